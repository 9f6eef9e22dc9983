"""The Dockerfile, checked statically (scripts/image-check.sh, run by .ci/run, builds the CPU image
and serves it):

  - hadolint passes (settings in .hadolint.yaml);
  - the build stage installs and builds with the README's own scripts (setup.sh, build.sh), so CI
    exercises the image's install steps on every run;
  - every shared library the built dinov3-server and dinov3-client link is either LibTorch's
    (copied from the wheel) or owned by a Debian package that scripts/debian-runtime-packages.txt
    lists for the slim runtime stage (or by the base system), and every listed package exists;
  - the LibTorch libraries scripts/runtime-libs.sh copies (CUDA and CPU images) are closed under
    their own dependencies;
  - the runtime stage runs as a numeric non-root user, exposes the server's default gRPC and
    metrics ports, and its HEALTHCHECK is the client's `health` command.
"""
import os
import re
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
BIN = os.path.join(ROOT, os.environ.get("BUILD_DIR", "build"), "bin")
BASE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}  # in debian:12-slim already


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def package_list(path):
    return [line.strip() for line in read(path).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def stage(name):
    """The text of the Dockerfile stage `name` (from its FROM to the next FROM)."""
    text = read("Dockerfile")
    match = re.search(rf"^FROM .* AS {name}\n(.*?)(?=^FROM |\Z)", text, re.M | re.S)
    assert match, f"no stage {name}"
    return match.group(1)


def test_hadolint_passes():
    hadolint = os.path.join(ROOT, ".venv", "bin", "hadolint")
    if not os.access(hadolint, os.X_OK):
        pytest.fail("hadolint missing: scripts/setup.sh installs it (requirements.txt)",
                    pytrace=False)
    result = subprocess.run([hadolint, "--no-color", DOCKERFILE], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_stage_uses_the_readme_scripts():
    build = stage("build")
    # --build-only: the image needs no test-only packages (photos, clang, prometheus, ...)
    assert "RUN scripts/setup.sh --build-only" in build
    assert "scripts/build.sh" in build
    assert "COPY scripts/setup.sh scripts/debian-packages.txt scripts/" in build


def linked_libraries(binary):
    """{soname: resolved path or None} of the libraries `binary` links directly."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]",
                        subprocess.run(["readelf", "-d", binary], capture_output=True,
                                       text=True, check=True).stdout)
    resolved = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(
        ["ldd", binary], capture_output=True, text=True, check=True).stdout, re.M))
    return {name: resolved.get(name) for name in needed}


def owner(path):
    result = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True,
                            text=True)
    if result.returncode != 0:  # merged /usr: the package may own the /lib path
        result = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
    return result.stdout.split(":")[0] if result.returncode == 0 else None


@pytest.mark.parametrize("binary", ["dinov3-server", "dinov3-client"])
def test_runtime_packages_provide_every_linked_library(binary):
    path = os.path.join(BIN, binary)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} missing: build first (scripts/build.sh)", pytrace=False)
    listed = set(package_list("scripts/debian-runtime-packages.txt")) | BASE_PACKAGES
    torch_lib = os.path.join(ROOT, ".venv")
    for name, resolved in linked_libraries(path).items():
        assert resolved, f"{binary}: {name} does not resolve"
        if os.path.realpath(resolved).startswith(os.path.realpath(torch_lib)):
            continue  # LibTorch: copied from the wheel into the image
        package = owner(resolved)
        assert package, f"{binary}: {name} ({resolved}) belongs to no Debian package"
        assert package.split(":")[0] in listed, \
            f"{binary}: {name} comes from {package}, missing in debian-runtime-packages.txt"


def test_listed_runtime_packages_are_real():
    # Installed here as dependencies of the -dev packages, so the names are Debian 12's.
    for package in package_list("scripts/debian-runtime-packages.txt"):
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                                capture_output=True, text=True)
        assert "ok installed" in result.stdout, f"{package} is not an installed Debian package"


# What the base image has (glibc, libstdc++, libgcc, zlib) and the driver provides (libcuda).
SYSTEM_SONAMES = {"libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0",
                  "libutil.so.1", "ld-linux-x86-64.so.2", "libstdc++.so.6", "libgcc_s.so.1",
                  "libz.so.1",
                  "libcuda.so.1"}


@pytest.mark.parametrize("mode", ["cpu", "cuda"])
def test_runtime_libs_are_closed_under_their_dependencies(mode):
    """Every library scripts/runtime-libs.sh puts into the image finds each library it links
    in the same set or on the base system: the runtime stage cannot miss one."""
    listed = subprocess.run([os.path.join(ROOT, "scripts", "runtime-libs.sh"), mode, "--list"],
                            capture_output=True, text=True, check=True).stdout.split()
    names = {os.path.basename(path) for path in listed}
    assert "libc10.so" in names and "libtorch_cpu.so" in names
    assert ("libtorch_cuda.so" in names) == (mode == "cuda")
    for path in listed:
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", subprocess.run(
            ["readelf", "-d", path], capture_output=True, text=True, check=True).stdout)
        missing = set(needed) - names - SYSTEM_SONAMES
        assert not missing, f"{mode}: {os.path.basename(path)} links {missing}, not in the image"


def test_runtime_stage_is_non_root_with_health_check_and_default_ports():
    runtime = stage("runtime")
    user = re.search(r"^USER (\d+)(?::(\d+))?$", runtime, re.M)
    assert user and int(user.group(1)) != 0, "runtime must run as a numeric non-root user"
    assert re.search(r'HEALTHCHECK .*\n?.*CMD \["dinov3-client", "health"', runtime)
    default_config = read("config/dinov3-server.yaml")
    for key in ("listen", ):
        ports = re.findall(rf"^\s+{key}: \"?[\d.]+:(\d+)\"?", default_config, re.M)
        assert ports, "no listen addresses in config/dinov3-server.yaml"
        exposed = re.search(r"^EXPOSE (.+)$", runtime, re.M).group(1).split()
        assert sorted(ports) == sorted(exposed), (ports, exposed)
    assert "scripts/debian-runtime-packages.txt" in runtime
    # Configuration by file only: a DINOV3_<KEY> variable in the image would override the file
    # that docker -v or a Kubernetes ConfigMap mounts over /etc/dinov3/server.yaml.
    env_keys = re.findall(r"\b(DINOV3_[A-Z_]+)=", runtime)
    assert env_keys == ["DINOV3_CONFIG"], env_keys
    assert "COPY config/examples/container.yaml /etc/dinov3/server.yaml" in runtime
    assert "COPY --from=build /opt/dinov3 /opt/dinov3" in runtime
    assert 'scripts/runtime-libs.sh "$TORCH" /opt/dinov3/lib' in stage("build")
