#!/usr/bin/env bash
# Helpers for the CI sections: background `cargo install`s started early, waited for later.
BG_DIR="${BG_DIR:-target/ci-bg}"

# bg_install BINARY CRATE [cargo install args…]: starts `cargo install` in the background
# unless BINARY is already on the PATH. Its log and exit code land in $BG_DIR.
bg_install() {
  local bin=$1
  shift
  mkdir -p "$BG_DIR"
  if command -v "$bin" >/dev/null 2>&1; then
    return 0
  fi
  rm -f "$BG_DIR/$bin.rc"
  echo "installing $bin in the background (log: $BG_DIR/$bin.log)"
  (nice -n 10 cargo install "$@" >"$BG_DIR/$bin.log" 2>&1; echo $? >"$BG_DIR/$bin.rc") &
}

# bg_wait BINARY: waits (at most an hour) for a background install of BINARY, then checks it.
bg_wait() {
  local bin=$1
  if [ -f "$BG_DIR/$bin.log" ] && ! command -v "$bin" >/dev/null 2>&1; then
    echo "waiting for the background install of $bin"
    for _ in $(seq 1 720); do
      [ -f "$BG_DIR/$bin.rc" ] && break
      sleep 5
    done
    if [ "$(cat "$BG_DIR/$bin.rc" 2>/dev/null)" != 0 ]; then
      echo "installing $bin failed or timed out:"
      tail -30 "$BG_DIR/$bin.log"
      return 1
    fi
  fi
  command -v "$bin" >/dev/null 2>&1
}
