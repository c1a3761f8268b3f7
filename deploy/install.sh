#!/bin/sh
# Put pinnace's node kit in place on a Debian node: the systemd unit, the configuration, the
# registry hosts directory (with examples), a CNI network, crictl's and kubelet's settings.
#
#   sh deploy/install.sh [--dry-run] [--root-prefix DIR] [--pinnaced PATH]
#
# Idempotent: run it again and it changes nothing. Files an operator edits (config.toml,
# crictl.yaml, the CNI network) are installed only where none exists yet, never overwritten;
# the unit file and the crun wrapper are pinnace's own and are kept in step with the kit.
# A CNI config goes in only when the conf dir has none (another network plugin may own it).
#
#   --dry-run           print what would change, change nothing
#   --root-prefix DIR   install under DIR instead of / (packaging, tests); no systemctl
#   --pinnaced PATH     the pinnaced the unit runs (default: `command -v pinnaced`, else
#                       /usr/local/bin/pinnaced, where `pip install .` puts it)
#
# Each line of output is one action: install, update, keep (exists; not overwritten),
# unchanged, mkdir, or a missing package to apt-get install.
set -eu

KIT=$(cd "$(dirname "$0")" && pwd)
PREFIX=""
DRY_RUN=0
PINNACED=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --root-prefix) PREFIX="${2:?--root-prefix needs a directory}"; shift ;;
        --root-prefix=*) PREFIX="${1#*=}" ;;
        --pinnaced) PINNACED="${2:?--pinnaced needs a path}"; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
PREFIX="${PREFIX%/}"
if [ -z "$PINNACED" ]; then
    PINNACED=$(command -v pinnaced 2>/dev/null || echo /usr/local/bin/pinnaced)
fi

say() { echo "$*"; }
run() { if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi; }

MADE=" "  # directories made (or, in a dry run, that would be)
ensure_dir() {  # ensure_dir MODE DIR
    case "$MADE" in *" $2 "*) return 0 ;; esac
    if [ ! -d "$PREFIX$2" ]; then
        parent=$(dirname "$2")
        [ "$parent" = "$2" ] || ensure_dir 0755 "$parent"
        say "mkdir     $2"
        run mkdir -m "$1" "$PREFIX$2"
    fi
    MADE="$MADE$2 "
}

# place MODE SOURCE TARGET POLICY: POLICY "owned" keeps TARGET equal to SOURCE; "config"
# installs it only if TARGET does not exist.
place() {
    mode=$1 source=$2 target=$3 policy=$4
    dest="$PREFIX$target"
    ensure_dir 0755 "$(dirname "$target")"
    if [ -e "$dest" ]; then
        if cmp -s "$source" "$dest"; then
            say "unchanged $target"
            return
        fi
        if [ "$policy" = config ]; then
            say "keep      $target (yours; the kit's is $source)"
            return
        fi
        say "update    $target"
    else
        say "install   $target"
    fi
    run install -m "$mode" "$source" "$dest"
}

# The unit runs this node's pinnaced.
UNIT=$(mktemp)
trap 'rm -f "$UNIT"' EXIT
sed "s|/usr/local/bin/pinnaced|$PINNACED|" "$KIT/pinnace.service" > "$UNIT"

ensure_dir 0755 /etc/pinnace
place 0644 "$KIT/config.toml" /etc/pinnace/config.toml config
ensure_dir 0755 /etc/pinnace/certs.d
for example in "$KIT"/certs.d/*/hosts.toml; do
    host=$(basename "$(dirname "$example")")
    place 0644 "$example" "/usr/share/doc/pinnace/certs.d/$host/hosts.toml" owned
done
place 0644 "$KIT/certs.d/README.md" /usr/share/doc/pinnace/certs.d/README.md owned
# the unit's Documentation= (systemctl help pinnace)
place 0644 "$KIT/../README.md" /usr/share/doc/pinnace/README.md owned
place 0644 "$KIT/kubelet/config.yaml" /usr/share/doc/pinnace/kubelet-config.yaml owned
place 0644 "$KIT/examples/pod.yaml" /usr/share/doc/pinnace/examples/pod.yaml owned
place 0755 "$KIT/crun-hybrid-cgroups" /usr/local/lib/pinnace/crun-hybrid-cgroups owned
place 0644 "$UNIT" /etc/systemd/system/pinnace.service owned
place 0644 "$KIT/crictl.yaml" /etc/crictl.yaml config

ensure_dir 0755 /etc/cni/net.d
existing=$(find "$PREFIX/etc/cni/net.d" -maxdepth 1 -type f \
    \( -name '*.conflist' -o -name '*.conf' -o -name '*.json' \) 2>/dev/null | head -1)
if [ -z "$existing" ] || [ "$existing" = "$PREFIX/etc/cni/net.d/10-pinnace.conflist" ]; then
    place 0644 "$KIT/cni/10-pinnace.conflist" /etc/cni/net.d/10-pinnace.conflist config
else
    say "keep      ${existing#"$PREFIX"} (a network is configured; 10-pinnace.conflist not added)"
fi
ensure_dir 0711 /var/lib/pinnace

# What pinnaced runs, from Debian's packages.
for pair in runc:/usr/sbin/runc conmon:/usr/bin/conmon crun:/usr/bin/crun \
            containernetworking-plugins:/usr/lib/cni/bridge; do
    package=${pair%%:*} path=${pair#*:}
    if [ ! -x "$path" ]; then
        say "missing   $path: apt-get install $package"
    fi
done

if [ -z "$PREFIX" ] && [ "$DRY_RUN" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
    say "next      systemctl enable --now pinnace"
fi
