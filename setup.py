"""Only what pyproject.toml cannot say: the shipped sweeps, SLURM profiles and reference tables stay
at the top of the checkout (sweeps/, slurm/profiles/, results/reference/) and go into the wheel as
data of the package benchmark.shipped, which finds them in either place (benchmark/shipped)."""

from setuptools import find_packages, setup

SHIPPED = {
    "benchmark.shipped.sweeps": "sweeps",
    "benchmark.shipped.profiles": "slurm/profiles",
    "benchmark.shipped.reference": "results/reference",
}

setup(
    packages=find_packages(include=["benchmark", "benchmark.*"]) + list(SHIPPED),
    package_dir=SHIPPED,
    package_data={package: ["*.yaml", "*.csv", "*.md"] for package in SHIPPED},
)
