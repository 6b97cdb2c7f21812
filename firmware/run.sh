#!/usr/bin/env bash
# Builds the two firmware examples, runs them under QEMU and checks their verdicts.
#
# Needs: the thumbv7em-none-eabihf and riscv32imac-unknown-none-elf Rust targets,
# qemu-system-arm and qemu-system-riscv32 (Debian: qemu-system-arm, qemu-system-misc), readelf
# (binutils). defmt-print (`cargo install defmt-print`), if on PATH, decodes the defmt log.
# Exits non-zero if a build, a run, a timeout or a comparison fails.
set -uo pipefail
cd "$(dirname "$0")"
# Paths below assume this workspace's own target folder, whatever the caller exported.
export CARGO_TARGET_DIR="$PWD/target"
export CARGO_TERM_COLOR=never

failures=()
fail() { echo "FAILED: $*"; failures+=("$*"); }
step() { echo; echo "--- $*"; }
# A build that fails is tried once more: a landing failed on rust-lld killed by SIGBUS (a
# crash of the linker, as on a full disk), not on the code; a real compile error fails twice.
build() {
  cargo build "$@" && return 0
  echo "build failed; trying once more ($(df -h . | awk 'NR == 2 { print $4 " free" }'))"
  cargo build "$@"
}

for tool in qemu-system-arm qemu-system-riscv32 readelf timeout; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found"; exit 1; }
done

step "format and clippy (firmware workspace)"
# `--all` would also check the core (a path dependency), which the main workspace checks.
cargo fmt -p edxs-fw-common -p edxs-fw-cortex-m4f -p edxs-fw-rv32 -p edxs-fw-budget -- --check || fail "cargo fmt"
cargo clippy -q -p edxs-fw-budget -- -D warnings || fail "clippy budget"
cargo clippy -q --release -p edxs-fw-common -p edxs-fw-cortex-m4f --target thumbv7em-none-eabihf -- -D warnings \
  || fail "clippy thumbv7em"
cargo clippy -q --release -p edxs-fw-common -p edxs-fw-rv32 --target riscv32imac-unknown-none-elf -- -D warnings \
  || fail "clippy riscv32"

step "RAM budget (edxs-fw-budget, from the core's own length functions)"
cargo run -q -p edxs-fw-budget -- 256 || fail "budget"

# Section sizes from the ELF: flash holds every loadable section (.vector_table/.init, .text,
# .rodata, .eh_frame and .data's initial values), RAM holds .data, .bss and .uninit plus the
# stack the run reports.
sizes() {
  local elf=$1 stack=$2 flash=0 ram=0 line name type size flags
  local -A by=()
  while read -r line; do
    read -r name type _ _ size _ flags _ <<<"$line"
    [[ $flags == *A* ]] || continue
    size=$((16#$size))
    by[$name]=$size
    if [[ $type == PROGBITS ]]; then flash=$((flash + size)); fi
    case $name in .data | .bss | .uninit) ram=$((ram + size)) ;; esac
  done < <(readelf -SW "$elf" | sed -n 's/^ *\[ *[0-9]*\] //p')
  printf '  flash %d B (.text %d, .rodata %d, .data %d, other %d)\n' "$flash" \
    "${by[.text]:-0}" "${by[.rodata]:-0}" "${by[.data]:-0}" \
    "$((flash - ${by[.text]:-0} - ${by[.rodata]:-0} - ${by[.data]:-0}))"
  printf '  RAM   %d B (.data %d + .bss %d + .uninit %d + stack used %d)\n' "$((ram + stack))" \
    "${by[.data]:-0}" "${by[.bss]:-0}" "${by[.uninit]:-0}" "$stack"
}

run_example() {
  local package=$1 target=$2
  shift 2
  local elf="target/$target/release/$package" log="target/$package.out" defmt
  step "$package ($target)"
  if ! build -q --release -p "$package" --target "$target"; then
    fail "build $package"
    return
  fi
  case $target in
    thumbv7em-*) defmt=target/defmt-cortex-m4f.bin ;;
    *) defmt=target/defmt-rv32.bin ;;
  esac
  rm -f "$defmt"
  echo "\$ timeout 120 $* -kernel $elf"
  # QEMU runs from this directory: the firmware writes its defmt frames to $defmt over semihosting.
  timeout 120 "$@" -kernel "$elf" </dev/null 2>&1 | tee "$log"
  local code=${PIPESTATUS[0]}
  if [[ $code == 124 ]]; then
    fail "$package timed out after 120 s"
  elif [[ $code != 0 ]]; then
    fail "$package exited with $code"
  elif ! grep -qx PASS "$log"; then
    fail "$package printed no PASS"
  fi
  local stack
  stack=$(sed -n 's/.*stack used \([0-9]*\) B.*/\1/p' "$log")
  sizes "$elf" "${stack:-0}"
  if command -v defmt-print >/dev/null; then
    local decoded="target/$package.defmt.txt" n
    if defmt-print -e "$elf" <"$defmt" >"$decoded" 2>&1; then
      n=$(grep -c 'iteration [0-9]*: loss' "$decoded")
      echo "  defmt: $n iteration lines from edxs-core, last two frames:"
      tail -n 2 "$decoded" | sed 's/^/    /'
      [[ $n == 40 ]] || fail "$package logged $n iterations through defmt, expected 40"
    else
      fail "defmt-print could not decode $defmt"
    fi
  else
    echo "  defmt: $(wc -c <"$defmt" 2>/dev/null || echo 0) bytes of frames in $defmt (defmt-print not installed)"
  fi
}

# The streaming example (bin `$package-stream`, built with the package above). `-icount shift=0`
# ties QEMU's clock to its instruction count, 1 ns per instruction: minstret then counts
# instructions exactly, and SysTick ticks once per 40 instructions. Its figure lines start with
# the target's tag and are repeated at the end.
figures=()
run_stream() {
  local package=$1 target=$2 tag=$3
  shift 3
  local elf="target/$target/release/$package-stream" log="target/$package-stream-$tag.out"
  step "$package-stream ($target): the streaming example, instructions counted"
  [[ -f $elf ]] || { fail "no $elf (build failed?)"; return; }
  echo "\$ timeout 120 $* -icount shift=0 -kernel $elf"
  timeout 120 "$@" -icount shift=0 -kernel "$elf" </dev/null 2>&1 | tee "$log"
  local code=${PIPESTATUS[0]}
  if [[ $code == 124 ]]; then
    fail "$package-stream ($tag) timed out after 120 s"
  elif [[ $code != 0 ]]; then
    fail "$package-stream ($tag) exited with $code"
  elif ! grep -qx PASS "$log"; then
    fail "$package-stream ($tag) printed no PASS"
  fi
  local line
  while IFS= read -r line; do figures+=("$line"); done < <(grep "^$tag .*instructions per" "$log")
}

arm=(qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic
  -semihosting-config enable=on,target=native)
riscv=(qemu-system-riscv32 -machine virt -bios none -nographic
  -semihosting-config enable=on,target=native)
run_example edxs-fw-cortex-m4f thumbv7em-none-eabihf "${arm[@]}"
run_stream edxs-fw-cortex-m4f thumbv7em-none-eabihf m4f "${arm[@]}"
run_example edxs-fw-rv32 riscv32imac-unknown-none-elf "${riscv[@]}"
run_stream edxs-fw-rv32 riscv32imac-unknown-none-elf rv32 "${riscv[@]}"

# The same RV32 streaming source with the F extension (QEMU virt's CPU has it): the difference
# is what soft float costs. Skipped, visibly, when the Rust target is not installed.
if rustup target list --installed 2>/dev/null | grep -qx riscv32imafc-unknown-none-elf; then
  if build -q --release -p edxs-fw-rv32 --bin edxs-fw-rv32-stream \
    --target riscv32imafc-unknown-none-elf; then
    run_stream edxs-fw-rv32 riscv32imafc-unknown-none-elf rv32f "${riscv[@]}"
  else
    fail "build edxs-fw-rv32-stream for riscv32imafc"
  fi
else
  echo
  echo "--- skipped: RV32 with hardware f32 (rustup target add riscv32imafc-unknown-none-elf)"
fi

echo
echo "--- instruction figures (streaming example; QEMU -icount shift=0)"
printf '%s\n' "${figures[@]}"

echo
if ((${#failures[@]})); then
  echo "firmware: ${#failures[@]} failure(s): ${failures[*]}"
  exit 1
fi
echo "firmware: batch and streaming examples passed on both targets"
