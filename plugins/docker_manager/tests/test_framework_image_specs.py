"""What the framework model images are made of and how they are asked for (no Docker needed).

The images themselves are built and served from in ``plugins/deployers/tests/test_framework_images_docker.py``.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md

import pytest
from clipper_docker._dockerapi import build_command
from clipper_docker.images import DEFAULT_IMAGES, IMAGE_NAMES
from clipper_docker.images._rootfs import JAVA, PYTHON
from clipper_docker.images.build import packaged_dockerfiles
from clipper_docker.images.cli import add_build_arguments
from clipper_docker.images.frameworks import FRAMEWORK_IMAGES, FrameworkImage


def test_every_image_has_a_packaged_dockerfile_and_framework_images_are_opt_in() -> None:
    dockerfiles = packaged_dockerfiles()
    assert sorted(dockerfiles) == sorted(f"{name}.Dockerfile" for name in IMAGE_NAMES)
    assert set(FRAMEWORK_IMAGES) == set(IMAGE_NAMES) - set(DEFAULT_IMAGES)
    for fw in FRAMEWORK_IMAGES.values():
        text = dockerfiles[f"{fw.name}.Dockerfile"].decode()
        # its own wheels go in the build stage only; the final stage copies the environment
        assert f"COPY wheels/frameworks/{fw.extra}/" in text and "COPY --from=build /opt/clipper/" in text
        assert text.count("FROM ${BASE_IMAGE}") == 2, fw.name


def test_the_pyspark_image_alone_is_built_on_the_java_base() -> None:
    assert [fw.name for fw in FRAMEWORK_IMAGES.values() if fw.java] == ["pyspark-container"]
    assert set(PYTHON.packages) < set(JAVA.packages) and "openjdk-17-jre-headless" in JAVA.packages
    assert PYTHON.tag != JAVA.tag and PYTHON.tarball != JAVA.tarball


def test_frameworks_are_pinned_to_the_release_installed_here() -> None:
    for fw in FRAMEWORK_IMAGES.values():
        for pkg, requirement in zip(fw.packages, fw.requirements(), strict=True):
            try:
                assert requirement == f"{pkg}=={md.version(pkg)}"
            except md.PackageNotFoundError:
                assert requirement.startswith(pkg)


def test_a_framework_not_installed_here_takes_the_extras_requirement() -> None:
    torch_extra = FrameworkImage("x-container", "torch", ("torch-is-not-installed-here", "torch"))
    absent, torch = torch_extra.requirements()
    assert absent == "torch-is-not-installed-here"  # no declared requirement: the bare name
    assert torch.replace(" ", "") in {f"torch=={md.version('torch')}" if _installed("torch") else "", "torch==2.13.0"}
    declared = FrameworkImage("y-container", "pyspark", ("pyspark",))
    (req,) = declared.requirements()
    try:
        assert req == f"pyspark=={md.version('pyspark')}"
    except md.PackageNotFoundError:
        assert req.replace(" ", "") == "pyspark>=3.5"  # clipper-deployers' [pyspark] extra


def test_a_missing_framework_image_names_the_command_that_builds_it() -> None:
    assert build_command("clipper/pyspark-container:0.5.0") == "`clipper images build --only pyspark-container`"
    assert build_command("localhost:5000/clipper/onnx-container:1") == "`clipper images build --only onnx-container`"
    assert "--only" not in build_command("clipper/python-closure-container:0.5.0")
    assert "--only" not in build_command("someone/else:latest")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], list(DEFAULT_IMAGES)),
        (["--all"], list(IMAGE_NAMES)),
        (["--only", "pytorch-container"], ["pytorch-container"]),
    ],
)
def test_build_options_choose_the_images(argv: list[str], expected: list[str]) -> None:
    parser = argparse.ArgumentParser()
    add_build_arguments(parser)
    assert parser.parse_args(argv).only == expected


def test_all_and_only_cannot_be_combined() -> None:
    parser = argparse.ArgumentParser()
    add_build_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--all", "--only", "redis"])


def _installed(dist: str) -> bool:
    try:
        md.version(dist)
    except md.PackageNotFoundError:
        return False
    return True
