# testvm.compilers: gcc-15,gcc-16,clang-21,clang-22
#
# Builder for Debian unstable (sid): the newest compilers. Built only when a
# requested compiler is provided by no other image. Mirrors that are
# snapshots serve sid with an expired Release file: accept it.
ARG BASE
FROM ${BASE}
ARG MIRROR
ENV DEBIAN_FRONTEND=noninteractive
RUN rm -f /etc/apt/sources.list.d/debian.sources \
    && echo "deb ${MIRROR} sid main" > /etc/apt/sources.list \
    && apt-get -o Acquire::Check-Valid-Until=false update \
    && apt-get install -y --no-install-recommends \
        make cmake bc flex bison pkg-config kmod dwarves file ca-certificates \
        libc6-dev libelf-dev zlib1g-dev uthash-dev libgtest-dev libcap-dev \
        libtbb-dev libjsoncpp-dev libre2-dev libvalijson-dev \
        libbpf-dev bpftool \
        gcc-15 g++-15 gcc-16 g++-16 \
        clang-21 llvm-21 clang-22 llvm-22 \
    && rm -rf /var/lib/apt/lists/*
