#!/usr/bin/env bash
# Builds the deployment package azd uploads (azure.yaml: service `replication`, dist .deploy, run as its
# prepackage hook): exactly what the Functions host runs and nothing else.
#   - dist/functions, dist/orchestrations, dist/shared: the compiled app (no TypeScript sources, no source maps,
#     no tools/, test/, bench/, docs/, infra/);
#   - dist/console: the operator console's bundle, which the app's console function serves;
#   - host.json, package.json (without scripts, so nothing rebuilds it), package-lock.json;
#   - node_modules with the production dependencies only (`npm ci --omit=dev`, from the lockfile).
# Usage: infra/tools/package.sh [--no-install] [--no-build]
#   --no-install  skip node_modules (to list the app files only); --no-build  use dist/ as it is
# PACKAGE_DIR overrides the output folder (default .deploy). Prints the package's size at the end.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
out="${PACKAGE_DIR:-$repo/.deploy}"
install=1
build=1
for arg in "$@"; do
    case "$arg" in
    --no-install) install=0 ;;
    --no-build) build=0 ;;
    *) echo "usage: $0 [--no-install] [--no-build]" >&2; exit 2 ;;
    esac
done

cd "$repo"
[ "$build" = 0 ] || npm run build --silent
[ -d dist/functions ] || { echo "package: dist/ is not built (npm run build)" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/dist"
[ -f dist/console/index.html ] || { echo "package: the console bundle dist/console is not built (npm run build)" >&2; exit 1; }
for part in functions orchestrations shared console; do
    cp -R "dist/$part" "$out/dist/$part"
done
find "$out/dist" -name '*.map' -type f -delete
cp host.json package-lock.json "$out/"
node -e '
const pkg = require(process.argv[1]);
for (const key of ["scripts", "bin"]) delete pkg[key];
require("fs").writeFileSync(process.argv[2], JSON.stringify(pkg, null, 2) + "\n");
' "$repo/package.json" "$out/package.json"
if [ "$install" = 1 ]; then
    # Our production dependencies are plain JavaScript and WebAssembly: what installs here runs on Linux in Azure.
    (cd "$out" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
echo "package: $(du -sk "$out" | cut -f1) KiB in $(find "$out" -type f | wc -l) files at ${out#"$repo"/}"
