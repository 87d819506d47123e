#!/usr/bin/env bash
# Builds the CPU kernels for aarch64 and runs their tests under qemu user-mode emulation, so the
# NEON kernels (core/src/cpu/kernels/neon) are checked against the scalar reference on an
# x86-64 machine. Idempotent: installs what is missing (Debian packages, the rustup target),
# then lints the aarch64 build of sluice-core and runs the cpu::kernels tests.
#
#   apt: qemu-user (qemu-aarch64), gcc-aarch64-linux-gnu + libc6-dev-arm64-cross (the linker
#        and the target's C library, also used by qemu through -L /usr/aarch64-linux-gnu)
#   rustup: the aarch64-unknown-linux-gnu target
#
# The linker and runner are configured in .cargo/config.toml. Set CARGO_TARGET_DIR to keep
# these builds apart from the host's (they never share artefacts anyway).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=aarch64-unknown-linux-gnu

need_apt=()
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || need_apt+=(libc6-dev-arm64-cross)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "neon.sh: apt-get install ${need_apt[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

cargo clippy -p sluice-core --release --target "$target" --lib --tests -- -D warnings
# Twice: the kernels take the `sdot` path where the CPU has the dot-product extension, else
# plain widening multiplies. qemu's Cortex-A72 model lacks the extension, Neoverse-N1 has it.
for cpu in cortex-a72:0 neoverse-n1:1; do
  echo "neon.sh: cpu::kernels tests on qemu -cpu ${cpu%:*}" >&2
  QEMU_CPU=${cpu%:*} SLUICE_EXPECT_SDOT=${cpu#*:} cargo test -p sluice-core --release --target "$target" --lib cpu::kernels -- --show-output
done
