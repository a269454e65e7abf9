# testvm.compilers: gcc-9,gcc-10,clang-11,clang-13
#
# Cross builder for arm64 kernels on Debian 11 (bullseye), built on the
# bullseye builder image (BASE):
# - the aarch64 cross gcc of each of its gccs (its clangs build eBPF for any
#   target as they are);
# - the arm64 libraries scap-open and drivers_test link (and libs' configure
#   looks for), multiarch;
# - /opt/testvm-target: the arm64 programs drivers_test runs in the guest
#   (coreutils, dash), extracted beside the image's own, with their
#   libraries installed for arm64.
ARG BASE
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN dpkg --add-architecture arm64 \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        gcc-9-aarch64-linux-gnu gcc-10-aarch64-linux-gnu g++-10-aarch64-linux-gnu \
        libc6-dev:arm64 libstdc++6:arm64 libelf-dev:arm64 zlib1g-dev:arm64 libgtest-dev:arm64 libcap-dev:arm64 \
        libtbb-dev:arm64 libjsoncpp-dev:arm64 libre2-dev:arm64 \
        libbpf-dev:arm64 \
    && apt-get install -y --no-install-recommends libacl1:arm64 libattr1:arm64 libgmp10:arm64 libselinux1:arm64 \
    && mkdir -p /opt/testvm-target/usr/bin /opt/testvm-target/usr/sbin /opt/testvm-target/usr/lib \
    && ln -s usr/bin /opt/testvm-target/bin && ln -s usr/sbin /opt/testvm-target/sbin && ln -s usr/lib /opt/testvm-target/lib \
    && cd /tmp && apt-get download coreutils:arm64 dash:arm64 \
    && for d in *.deb; do dpkg-deb --fsys-tarfile "$d" | tar -x --keep-directory-symlink -C /opt/testvm-target; done \
    && rm -f /tmp/*.deb \
    && rm -rf /var/lib/apt/lists/*
