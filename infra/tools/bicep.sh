#!/usr/bin/env bash
# Compiles and lints every Bicep entry point with the Bicep CLI pinned in infra/tools/bicep.csproj.
#   infra/tools/bicep.sh restore   fetch the CLI from NuGet into .tools/ (needs dotnet)
#   infra/tools/bicep.sh check     restore, then `bicep build` and `bicep lint` every entry point
#   infra/tools/bicep.sh path      print the CLI's path (empty when it is not restored)
# Any diagnostic fails the check: linter rules are errors (infra/bicepconfig.json), and compiler warnings
# (BCPxxx, which bicepconfig.json cannot raise) are failed here.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
project="$repo/infra/tools/bicep.csproj"
packages="$repo/.tools/nuget"
version="$(sed -n 's/.*Include="Azure.Bicep.CommandLine.linux-x64" Version="\[\([^]]*\)\]".*/\1/p' "$project")"
cli="$packages/azure.bicep.commandline.linux-x64/$version/tools/bicep"
# The CLI is a self-contained .NET program; without ICU it needs invariant globalization.
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1

restore() {
    if [ -x "$cli" ]; then return 0; fi
    command -v dotnet >/dev/null 2>&1 || { echo "bicep: dotnet is required to restore the Bicep CLI" >&2; return 1; }
    # Restore output (obj/) goes under .tools too, so the source tree stays clean.
    dotnet restore "$project" --packages "$packages" -p:MSBuildProjectExtensionsPath="$repo/.tools/obj/" --verbosity quiet
    chmod +x "$cli" # NuGet does not keep the execute bit
}

entry_points() {
    ls "$repo"/infra/main.bicep "$repo"/infra/hooks/*.bicep 2>/dev/null || true
}

check() {
    restore
    echo "bicep: $("$cli" --version)"
    local failed=0 file out clean
    for file in $(entry_points); do
        clean=1
        for step in build lint; do
            if [ "$step" = build ]; then
                out="$("$cli" build "$file" --stdout 2>&1 >/dev/null)" || clean=0
            else
                out="$("$cli" lint "$file" 2>&1)" || clean=0
            fi
            if [ -n "$out" ]; then
                echo "$out" >&2
                clean=0
            fi
        done
        if [ "$clean" = 1 ]; then echo "bicep: ${file#"$repo"/} builds and lints clean"; else failed=1; fi
    done
    [ "$failed" = 0 ] || { echo "bicep: diagnostics above must be fixed" >&2; return 1; }
}

case "${1:-check}" in
restore) restore ;;
check) check ;;
path) if [ -x "$cli" ]; then echo "$cli"; fi ;;
*) echo "usage: $0 [restore|check|path]" >&2; exit 2 ;;
esac
