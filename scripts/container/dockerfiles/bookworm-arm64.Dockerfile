# testvm.compilers: gcc-11,gcc-12,clang-13,clang-14,clang-15,clang-16
#
# Cross builder for arm64 kernels on Debian 12 (bookworm), built on the
# bookworm builder image (BASE): the aarch64 cross gcc of each of its gccs,
# and the arm64 libraries scap-open and drivers_test link (multiarch;
# libbpf from bookworm-backports, as in the parent). Its clangs build eBPF
# for any target as they are.
ARG BASE
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN dpkg --add-architecture arm64 \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        gcc-11-aarch64-linux-gnu gcc-12-aarch64-linux-gnu g++-12-aarch64-linux-gnu \
        libc6-dev:arm64 libstdc++6:arm64 libelf-dev:arm64 zlib1g-dev:arm64 libgtest-dev:arm64 libcap-dev:arm64 \
    && apt-get install -y --no-install-recommends -t bookworm-backports libbpf-dev:arm64 \
    && rm -rf /var/lib/apt/lists/*
