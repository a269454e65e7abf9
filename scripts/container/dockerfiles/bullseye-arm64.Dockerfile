# testvm.compilers: gcc-9,gcc-10,clang-11,clang-13
#
# Cross builder for arm64 kernels on Debian 11 (bullseye), built on the
# bullseye builder image (BASE): the aarch64 cross gcc of each of its gccs,
# and the arm64 libraries scap-open and drivers_test link (multiarch). Its
# clangs build eBPF for any target as they are.
ARG BASE
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN dpkg --add-architecture arm64 \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        gcc-9-aarch64-linux-gnu gcc-10-aarch64-linux-gnu g++-10-aarch64-linux-gnu \
        libc6-dev:arm64 libstdc++6:arm64 libelf-dev:arm64 zlib1g-dev:arm64 libgtest-dev:arm64 libcap-dev:arm64 \
        libbpf-dev:arm64 \
    && rm -rf /var/lib/apt/lists/*
