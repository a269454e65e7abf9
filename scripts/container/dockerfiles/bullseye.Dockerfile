# testvm.compilers: gcc-9,gcc-10,clang-11,clang-13
#
# Builder for Debian 11 (bullseye) kernels and compilers. BASE is a Debian
# bullseye image (pulled, or bootstrapped from the host's mirror); MIRROR is
# the Debian archive the packages come from.
ARG BASE
FROM ${BASE}
ARG MIRROR
ENV DEBIAN_FRONTEND=noninteractive
RUN rm -f /etc/apt/sources.list.d/debian.sources \
    && echo "deb ${MIRROR} bullseye main" > /etc/apt/sources.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        make cmake bc flex bison pkg-config kmod dwarves file ca-certificates \
        libc6-dev libelf-dev zlib1g-dev uthash-dev libgtest-dev libcap-dev \
        libtbb-dev libjsoncpp-dev libre2-dev \
        libbpf-dev \
        gcc-9 g++-9 gcc-10 g++-10 \
        clang-11 llvm-11 clang-13 llvm-13 \
    && rm -rf /var/lib/apt/lists/*
