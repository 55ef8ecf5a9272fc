#!/bin/sh
# Sets up everything the test suite needs on a fresh machine, then runs it:
# Debian's mosquitto broker (for the MQTT tests), the package with its test extras, pytest.
# Extra arguments go to pytest.
set -e
cd "$(dirname "$0")/.."
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
  else
    echo "mosquitto is missing and cannot be installed here: apt-get install mosquitto" >&2
  fi
fi
python3 -m pip install -q ".[test]"
# -P: import the installed (compiled) package, not the source folder
exec python3 -P -m pytest "$@"
