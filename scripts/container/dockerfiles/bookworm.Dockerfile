# testvm.compilers: gcc-11,gcc-12,clang-13,clang-14,clang-15,clang-16
#
# Builder for Debian 12 (bookworm). libbpf and bpftool come from
# bookworm-backports: modern_bpf needs libbpf >= 1.4 and bookworm has 1.1.
ARG BASE
FROM ${BASE}
ARG MIRROR
ENV DEBIAN_FRONTEND=noninteractive
RUN rm -f /etc/apt/sources.list.d/debian.sources \
    && printf 'deb %s bookworm main\ndeb %s bookworm-backports main\n' "${MIRROR}" "${MIRROR}" > /etc/apt/sources.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        make cmake bc flex bison pkg-config kmod dwarves file ca-certificates \
        libc6-dev libelf-dev zlib1g-dev uthash-dev libgtest-dev libcap-dev \
        libtbb-dev libjsoncpp-dev libre2-dev libvalijson-dev \
        gcc-11 g++-11 gcc-12 g++-12 \
        clang-13 llvm-13 clang-14 llvm-14 clang-15 llvm-15 clang-16 llvm-16 \
    && apt-get install -y --no-install-recommends -t bookworm-backports libbpf-dev bpftool \
    && rm -rf /var/lib/apt/lists/*
