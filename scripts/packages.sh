#!/bin/sh
# Print the Debian packages of scripts/packages.txt meant for TARGET (image or machine).
set -eu
target="${1:?usage: packages.sh image|machine}"
list="$(dirname "$0")/packages.txt"
awk -v t="$target" '!/^#/ && NF >= 2 && ($2 == "both" || $2 == t) { print $1 }' "$list"
