# testvm.compilers: gcc-12,gcc-13,gcc-14,clang-17,clang-18,clang-19
#
# Builder for Debian 13 (trixie): its kbuild host tools need GLIBC_2.38.
ARG BASE
FROM ${BASE}
ARG MIRROR
ENV DEBIAN_FRONTEND=noninteractive
RUN rm -f /etc/apt/sources.list.d/debian.sources \
    && echo "deb ${MIRROR} trixie main" > /etc/apt/sources.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        make cmake bc flex bison pkg-config kmod dwarves file ca-certificates \
        libc6-dev libelf-dev zlib1g-dev uthash-dev libgtest-dev libcap-dev \
        libtbb-dev libjsoncpp-dev libre2-dev libvalijson-dev \
        libbpf-dev bpftool \
        gcc-12 g++-12 gcc-13 g++-13 gcc-14 g++-14 \
        clang-17 llvm-17 clang-18 llvm-18 clang-19 llvm-19 \
    && rm -rf /var/lib/apt/lists/*
