#!/usr/bin/env bash
# Make sure headless Chromium (Debian's `chromium`) is there for the report's browser test.
#
# Where it is missing it is installed with apt-get (root only). Where it cannot be installed the
# browser tests skip, saying why, except under CI=true, where that is an error.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: installing chromium with apt-get" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) >&2
fi
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
echo "ensure-chromium: no chromium found and it could not be installed" >&2
if [ "${CI:-}" = "true" ]; then
    exit 1
fi
echo "ensure-chromium: the browser tests will skip" >&2
exit 0
