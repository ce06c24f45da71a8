#!/usr/bin/env bash
# deploy/smoke.sh: souk's deployment for real, not only read. It builds every service image from
# deploy/docker/Dockerfile and weighs it, brings the whole Compose shop (deploy/compose.yaml) up on
# a free loopback port, waits for every service to be ready, checks out through the gateway (sign
# up, cart, card, order confirmed, history), kills one service's process and checks the rest keep
# answering and it comes back, plays the Kubernetes dev overlay with `podman kube play`, then tears
# everything down and checks nothing is left: containers, pods, networks, volumes, secrets.
#
#   deploy/smoke.sh [--binaries debug|release|source] [--no-cargo] [--kill SERVICE] [--no-kube]
#
# --binaries   where the images' binaries come from (default release):
#              debug    the ones `cargo test --workspace` builds (CI's one build profile), stripped;
#              release  `cargo build --release` of the services, stripped as the Dockerfile strips;
#              source   the Dockerfile compiles them itself (needs its Rust image: a registry).
#              The first two copy host binaries into the Dockerfile's `prebuilt` stage; the
#              runtime stage, the one users get, is the same in all three.
# --no-cargo   take the debug or release binaries as they are in the target directory.
# --kill       the service whose process is killed mid-run (default inventory).
# --no-kube    skip the `podman kube play` phase.
#
# Runs with Podman (preferred; rootful, Debian 12's 4.3 works) or a Docker engine with Compose v2
# (SOUK_SMOKE_ENGINE=docker to choose it). Images that cannot be pulled — the distroless runtime,
# PostgreSQL, Redis, NATS — are built locally from Debian's packages (deploy/standins/) under the
# names the Dockerfile and Compose use, over a Debian base made with debootstrap when even that
# cannot be pulled. Those images stay as a cache (SOUK_SMOKE_CACHE, default
# /var/cache/souk/containers, holds podman-compose's virtual environment); everything a run starts
# is removed when it ends, failed or not. Each phase is timed; a failure prints the logs of the
# container that failed. docs/deploy.md, "Smoke test", says what it found and what it costs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

BINARIES=release
CARGO=1
KILL=inventory
KUBE=1
CACHE=${SOUK_SMOKE_CACHE:-/var/cache/souk/containers}
PODMAN_COMPOSE_VERSION=1.6.0
# How long the shop may take to be ready after `up`, and a killed service to come back, in seconds.
READY_TIMEOUT=${SOUK_SMOKE_READY_TIMEOUT:-300}
# Every run is its own Compose project, so runs never meet; the pid finds a dead run's leftovers.
PROJECT=souk-smoke-$$
WORK=$(mktemp -d /tmp/souk-smoke.XXXXXX)
ENGINE=
COMPOSE=()
PORT=
SUSPECT=
UP=0
KUBE_UP=0
KUBE_NETWORK=
PHASES=()
SIZES=()
# The gateway's container: the one to blame when a request through it fails.
GATEWAY=

log() { printf '\n=== smoke: %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }

# die MESSAGE: stop the run; the EXIT trap prints what failed and cleans up.
die() {
    printf '\n!!! smoke FAILED: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '9,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# parse_args ARGS...: the options above.
parse_args() {
    while (($#)); do
        case $1 in
            --binaries) BINARIES=${2:-}; shift 2 ;;
            --kill) KILL=${2:-}; shift 2 ;;
            --no-cargo) CARGO=0; shift ;;
            --no-kube) KUBE=0; shift ;;
            -h | --help) usage ;;
            *) echo "smoke: unknown option $1" >&2; usage ;;
        esac
    done
    case $BINARIES in debug | release | source) ;; *) usage ;; esac
    [[ $KILL != gateway ]] || die "--kill gateway would leave nothing to answer through"
}

# phase NAME FUNCTION: run FUNCTION, timed; its time goes in the summary.
phase() {
    local name=$1 start=$SECONDS
    shift
    log "$name"
    "$@"
    PHASES+=("$(printf '%-10s %4ss' "$name" $((SECONDS - start)))")
}

# --- the engine ----------------------------------------------------------------------------------

# find_engine: Podman if there is one, else a Docker engine that answers (SOUK_SMOKE_ENGINE decides).
find_engine() {
    ENGINE=${SOUK_SMOKE_ENGINE:-}
    if [[ -z $ENGINE ]]; then
        if command -v podman >/dev/null; then ENGINE=podman
        elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
        else die "neither podman nor a Docker engine here (Debian: apt-get install podman runc)"
        fi
    fi
    for tool in curl jq "$ENGINE"; do
        command -v "$tool" >/dev/null || die "$tool is missing"
    done
    # The virtual environment's Python reads YAML for this script on either engine.
    ensure_podman_compose
    if [[ $ENGINE == podman ]]; then
        configure_podman
        COMPOSE=("$CACHE/venv/bin/podman-compose")
        [[ $KUBE == 0 ]] || command -v kubectl >/dev/null || die "kubectl is missing (Debian's kubernetes-client), or pass --no-kube"
    else
        docker compose version >/dev/null || die "docker compose (Compose v2) is missing"
        COMPOSE=(docker compose)
        KUBE=0
    fi
    note "$("$ENGINE" --version); compose: $("${COMPOSE[@]}" version 2>/dev/null | head -n 1)"
}

# configure_podman: root without CAP_SYS_RESOURCE cannot raise a container's open-file limit past
# its own hard limit, crun 1.8 refuses the hybrid cgroup layout, and no systemd may run: where no
# containers.conf says otherwise, write one that works here. An existing one is left alone.
configure_podman() {
    local conf=/etc/containers/containers.conf
    if [[ $(id -u) != 0 || -e $conf ]]; then
        return
    fi
    local nofile
    nofile=$(ulimit -Hn)
    [[ $nofile == unlimited ]] && nofile=1048576
    command -v runc >/dev/null || die "runc is missing (apt-get install runc): crun 1.8 fails here"
    note "writing $conf (nofile=$nofile, runc, cgroupfs, file events)"
    mkdir -p /etc/containers
    cat >"$conf" <<EOF
# Written by souk's deploy/smoke.sh because none existed. A container may not raise its open-file
# limit past root's own hard limit here (no CAP_SYS_RESOURCE); crun 1.8 refuses the hybrid cgroup
# layout; no systemd runs for the cgroup manager or the journal.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
}

# ensure_podman_compose: podman-compose from PyPI in a virtual environment of its own (Debian's
# 1.0.3 corrupts exec-form health checks), kept in the cache.
ensure_podman_compose() {
    local venv=$CACHE/venv
    if [[ -x $venv/bin/podman-compose ]] &&
        [[ $("$venv/bin/podman-compose" version 2>/dev/null | head -n 1) == *" $PODMAN_COMPOSE_VERSION" ]]; then
        return
    fi
    note "installing podman-compose $PODMAN_COMPOSE_VERSION into $venv"
    mkdir -p "$CACHE"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet "podman-compose==$PODMAN_COMPOSE_VERSION" ||
        die "cannot install podman-compose from PyPI"
}

# --- what a run left behind ------------------------------------------------------------------

# project_label: the label both Compose tools put on what they create, for this engine.
project_label() {
    if [[ $ENGINE == podman ]]; then echo io.podman.compose.project; else echo com.docker.compose.project; fi
}

# remove_project NAME: every container, pod, network, volume and secret of smoke run NAME.
remove_project() {
    local name=$1 label ids=() id
    label="$(project_label)=$name"
    mapfile -t ids < <("$ENGINE" ps -aq --filter "label=$label")
    # -v: the anonymous volumes of the images' VOLUME /var/lib/souk go with their containers.
    ((${#ids[@]} == 0)) || "$ENGINE" rm -f -v "${ids[@]}" >/dev/null 2>&1 || true
    if [[ $ENGINE == podman ]]; then
        mapfile -t ids < <(podman pod ps -q --filter "label=souk.smoke=$name")
        ((${#ids[@]} == 0)) || podman pod rm -f "${ids[@]}" >/dev/null 2>&1 || true
        mapfile -t ids < <(podman ps -aq --filter "label=souk.smoke=$name")
        ((${#ids[@]} == 0)) || podman rm -f -v "${ids[@]}" >/dev/null 2>&1 || true
        for id in $(podman secret ls --format '{{.Name}}' | grep "^$name-" || true); do
            podman secret rm "$id" >/dev/null 2>&1 || true
        done
    fi
    for id in $("$ENGINE" volume ls -q --filter "label=$label"); do
        "$ENGINE" volume rm -f "$id" >/dev/null 2>&1 || true
    done
    for id in $("$ENGINE" network ls --format '{{.Name}}' | grep -E "^${name}(_|-|$)" || true); do
        "$ENGINE" network rm -f "$id" >/dev/null 2>&1 || true
    done
}

# remove_stale_runs: what smoke runs that died without cleaning up (kill -9, a lost machine) left.
remove_stale_runs() {
    local name
    for name in $({
        "$ENGINE" ps -a --format "{{.Labels}}" 2>/dev/null
        "$ENGINE" network ls --format '{{.Name}}' 2>/dev/null
    } | grep -oE 'souk-smoke-[0-9]+' | sort -u); do
        if ! kill -0 "${name#souk-smoke-}" 2>/dev/null; then
            note "removing what the dead run $name left"
            remove_project "$name"
        fi
    done
}

# leftovers: anything of this run's project that still exists, one line each.
leftovers() {
    local label
    label="$(project_label)=$PROJECT"
    "$ENGINE" ps -a --filter "label=$label" --format 'container {{.Names}}'
    "$ENGINE" volume ls --filter "label=$label" --format 'volume {{.Name}}'
    "$ENGINE" network ls --format '{{.Name}}' | grep -E "^${PROJECT}(_|-|$)" | sed 's/^/network /' || true
    if [[ $ENGINE == podman ]]; then
        podman pod ps --filter "label=souk.smoke=$PROJECT" --format 'pod {{.Name}}'
        podman ps -a --filter "label=souk.smoke=$PROJECT" --format 'container {{.Names}}'
        podman secret ls --format '{{.Name}}' | grep "^$PROJECT-" | sed 's/^/secret /' || true
    fi
    local volume
    while read -r -u 3 volume; do
        if "$ENGINE" volume inspect "$volume" >/dev/null 2>&1; then echo "volume $volume"; fi
    done 3< <(cat "$WORK/anonymous-volumes" 2>/dev/null
        awk '$1 == "configmap" { print $2 }' "$WORK/kube/plan" 2>/dev/null)
    if [[ -n $KUBE_NETWORK ]] && podman network exists "$KUBE_NETWORK"; then echo "network $KUBE_NETWORK"; fi
}

# remove_anonymous_volumes: the unnamed volumes recorded by record_anonymous_volumes.
remove_anonymous_volumes() {
    local volume
    while read -r -u 3 volume; do
        "$ENGINE" volume rm -f "$volume" >/dev/null 2>&1 || true
    done 3< <(cat "$WORK/anonymous-volumes" 2>/dev/null)
}

# on_exit: on failure, what the failing container said; always, remove what this run made.
on_exit() {
    local status=$?
    set +e
    if ((status != 0)) && [[ -n $ENGINE ]] && ((UP || KUBE_UP)); then
        show_failure
    fi
    if [[ -n $ENGINE ]] && ((UP || KUBE_UP)); then
        log "cleaning up after a failure"
        compose down --volumes --timeout 5 >/dev/null 2>&1
        kube_down >/dev/null 2>&1
        remove_project "$PROJECT"
        remove_anonymous_volumes
    fi
    rm -rf "$WORK"
    exit "$status"
}

# show_failure: the state of every container of the run, and the logs of the one that failed
# (or of each that is not running or was restarted when none was named).
show_failure() {
    log "containers of $PROJECT"
    local label
    label="$(project_label)=$PROJECT"
    local all=()
    mapfile -t all < <({
        "$ENGINE" ps -aq --filter "label=$label"
        [[ $ENGINE != podman ]] || podman ps -aq --filter "label=souk.smoke=$PROJECT"
    })
    ((${#all[@]} == 0)) || "$ENGINE" inspect --format \
        '{{.Name}}  {{.State.Status}}, restarted {{.RestartCount}} times, OOM-killed {{.State.OOMKilled}}, exit code {{.State.ExitCode}}' "${all[@]}"
    local names=$SUSPECT
    if [[ -z $names ]] && ((${#all[@]} > 0)); then
        names=$("$ENGINE" inspect --format '{{.Name}} {{.State.Status}} {{.RestartCount}}' "${all[@]}" |
            awk '$2 != "running" || $3 > 0 { print $1 }')
    fi
    local name
    for name in $names; do
        log "logs of $name (last 150 lines)"
        "$ENGINE" logs --tail 150 "$name" 2>&1
    done
    log "the last warnings and errors of the others"
    for name in $("$ENGINE" inspect --format '{{.Name}}' "${all[@]}" 2>/dev/null); do
        [[ " $names " == *" $name "* ]] && continue
        "$ENGINE" logs --tail 300 "$name" 2>&1 | grep -E '"level":"(WARN|ERROR)"|\[(ERR|WRN)\]|ERROR|FATAL' |
            tail -n 3 | cut -c1-400 | sed "s/^/$name: /"
    done
}

# --- images that cannot be pulled -------------------------------------------------------------

# image_exists NAME
image_exists() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

# standin_of NAME: the image NAME stands in for, when it is one of ours (deploy/standins/).
standin_of() { "$ENGINE" image inspect --format '{{index .Config.Labels "souk.standin"}}' "$1" 2>/dev/null; }

# try_pull NAME: pull NAME from its registry; false, quickly here, when none can be reached.
try_pull() {
    timeout 300 "$ENGINE" pull -q "$1" >/dev/null 2>"$WORK/pull.log" && return 0
    note "cannot pull $1: $(tail -n 1 "$WORK/pull.log")"
    return 1
}

# ensure_debian: Debian 12 for the stand-ins to build on, as docker.io/library/debian:bookworm-slim:
# pulled, or else made by debootstrap (minbase, ~70 s), imported and brought up to date.
ensure_debian() {
    local name=docker.io/library/debian:bookworm-slim
    if image_exists "$name" || try_pull "$name"; then
        return
    fi
    command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
    note "debootstrap --variant=minbase bookworm (no registry for $name)"
    local rootfs=$WORK/rootfs
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 ||
        { tail -n 20 "$WORK/debootstrap.log"; die "debootstrap failed"; }
    tar -C "$rootfs" --exclude='./var/cache/apt/archives/*.deb' --exclude='./var/lib/apt/lists/*' -c . |
        "$ENGINE" import --change 'CMD ["bash"]' - localhost/souk-debootstrap:bookworm >/dev/null 2>&1
    rm -rf "$rootfs"
    build_image "$name" deploy/standins/debian.Containerfile
}

# build_image NAME CONTAINERFILE: build a stand-in from deploy/standins/ under NAME.
build_image() {
    local name=$1 file=$2
    local format=()
    [[ $ENGINE == podman ]] && format=(--format docker)
    if ! "$ENGINE" build "${format[@]}" -f "$file" -t "$name" deploy/standins >"$WORK/build.log" 2>&1; then
        tail -n 40 "$WORK/build.log"
        die "building $name from $file failed"
    fi
}

# ensure_standin NAME CONTAINERFILE: NAME as pulled, or else built from Debian's packages. A
# stand-in is rebuilt every run, from its layer cache when its files did not change.
ensure_standin() {
    local name=$1 file=$2 started=$SECONDS
    if image_exists "$name" && [[ -z $(standin_of "$name") ]]; then
        note "$name: the real image"
        return
    fi
    if ! image_exists "$name" && try_pull "$name"; then
        note "$name: pulled"
        return
    fi
    ensure_debian
    build_image "$name" "$file"
    note "$name: built from $file ($((SECONDS - started)) s)"
}

# ensure_bases: the runtime base of the Dockerfile and the backends of Compose.
ensure_bases() {
    local runtime
    runtime=$(sed -n 's/^ARG RUNTIME_IMAGE=//p' deploy/docker/Dockerfile)
    ensure_standin "$runtime" deploy/standins/runtime.Containerfile
    local image
    for service in postgres redis nats; do
        image=$(compose_image "$service")
        ensure_standin "$image" "deploy/standins/$service.Containerfile"
    done
}

# --- the shop's images -------------------------------------------------------------------------

# compose_services: each service of compose.yaml built from the Dockerfile, with its image name
# ("identity souk-identity:0.1.0"), from compose.yaml itself.
compose_services() {
    awk '
        /^services:/ { in_services = 1; next }
        /^[a-z]/ { in_services = 0 }
        in_services && /^  [a-z][a-z0-9_-]*:$/ { service = substr($1, 1, length($1) - 1); image = "" }
        in_services && /^    image: / { image = $2 }
        in_services && /^        SERVICE: / && image != "" { print service, image }
    ' deploy/compose.yaml
}

# compose_image SERVICE: the image compose.yaml names for SERVICE.
compose_image() {
    awk -v want="$1" '
        /^  [a-z][a-z0-9_-]*:$/ { service = substr($1, 1, length($1) - 1) }
        service == want && /^    image: / { print $2; exit }
    ' deploy/compose.yaml
}

# target_dir: where cargo puts binaries (CARGO_TARGET_DIR, or the workspace's own).
target_dir() {
    cargo metadata --format-version 1 --no-deps | jq -r .target_directory
}

# collect_binaries: each service's binary and souk-healthcheck, in $WORK/binaries for the
# Dockerfile's `prebuilt` stage. Debug: what `cargo test --workspace` built (asking it again is
# a no-op after CI's test step, and builds nothing new either way). Release: the services alone.
collect_binaries() {
    [[ $BINARIES != source ]] || { note "the Dockerfile compiles them"; return; }
    local services=() packages=() service
    read -ra services <<<"$(compose_services | awk '{ print $1 }' | tr '\n' ' ')"
    for service in "${services[@]}"; do packages+=(-p "souk-$service"); done
    local dir
    dir=$(target_dir)
    if [[ $BINARIES == debug ]]; then
        dir=$dir/debug
        ((CARGO == 0)) || cargo test --workspace --no-run --quiet
    else
        dir=$dir/release
        ((CARGO == 0)) || cargo build --release --quiet "${packages[@]}" --bins
    fi
    mkdir -p "$WORK/binaries"
    for service in "${services[@]}"; do
        [[ -x $dir/souk-$service ]] || die "no $dir/souk-$service"
        # As the Dockerfile does: symbols stay (backtraces name functions), line tables go.
        strip --strip-debug -o "$WORK/binaries/souk-$service" "$dir/souk-$service"
    done
    rustc --edition 2024 -C opt-level=s -C strip=symbols deploy/docker/healthcheck.rs \
        -o "$WORK/binaries/souk-healthcheck"
    note "$BINARIES binaries from $dir, stripped of debug info: $(du -sh "$WORK/binaries" | cut -f1) in all"
}

# build_images: every service image, as Compose names it, from deploy/docker/Dockerfile; weighed.
build_images() {
    local args=()
    [[ $ENGINE == podman ]] && args+=(--format docker) # OCI images drop HEALTHCHECK
    if [[ $BINARIES == source ]]; then
        args+=(--build-arg BINARIES=compile)
    else
        args+=(--build-arg BINARIES=prebuilt --build-context "binaries=$WORK/binaries")
    fi
    local service image started size binary previous
    while read -r -u 3 service image; do
        started=$SECONDS
        previous=$("$ENGINE" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
        if [[ $BINARIES != source ]]; then
            "$ENGINE" build "${args[@]}" --build-arg "SERVICE=$service" -f deploy/docker/Dockerfile \
                --target prebuilt --iidfile "$WORK/prebuilt-id" . >/dev/null 2>&1 &&
                { sed 's/^sha256://' "$WORK/prebuilt-id"; echo; } >>"$WORK/prebuilt-ids"
        fi
        if ! "$ENGINE" build "${args[@]}" --build-arg "SERVICE=$service" -f deploy/docker/Dockerfile \
            -t "$image" . >"$WORK/build-$service.log" 2>&1; then
            tail -n 40 "$WORK/build-$service.log"
            die "building $image failed"
        fi
        check_image "$service" "$image"
        # The image this one replaces, and the untagged stages under it: else every run with
        # new binaries would leave ~400 MB of them in the store.
        if [[ -n $previous && $previous != $("$ENGINE" image inspect --format '{{.Id}}' "$image") ]]; then
            "$ENGINE" rmi "$previous" >/dev/null 2>&1 || true
        fi
        size=$("$ENGINE" image inspect --format '{{.Size}}' "$image")
        binary=-
        [[ $BINARIES == source ]] || binary=$(stat -c %s "$WORK/binaries/souk-$service")
        SIZES+=("$(printf '%-11s %7s MB image  %7s MB binary' "$service" "$(mb "$size")" "$(mb "$binary")")")
        note "$image: $(mb "$size") MB ($((SECONDS - started)) s)"
    done 3< <(compose_services)
    # The untagged `prebuilt` stages of earlier binaries, ours alone by their label; this run's
    # stay, the layer cache of the next run with the same binaries.
    local id
    for id in $("$ENGINE" images -q --no-trunc --filter dangling=true --filter label=souk.stage=prebuilt); do
        grep -qx "$id" "$WORK/prebuilt-ids" 2>/dev/null || "$ENGINE" rmi "$id" >/dev/null 2>&1 || true
    done
}

# mb BYTES: in megabytes, one decimal ("-" stays "-").
mb() {
    if [[ $1 == - ]]; then echo -; else awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000000 }'; fi
}

# check_image SERVICE IMAGE: the runtime stage as users get it: non-root, its binary as entry
# point, the health check, its labels.
check_image() {
    local service=$1 image=$2 shape
    shape=$("$ENGINE" image inspect --format \
        '{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Healthcheck.Test}}|{{index .Config.Labels "org.opencontainers.image.title"}}' "$image")
    local wanted="65532:65532|[\"/usr/local/bin/souk-$service\"]|[\"CMD\",\"/usr/local/bin/souk-healthcheck\"]|souk-$service"
    [[ $shape == "$wanted" ]] || die "$image: user|entrypoint|healthcheck|title is $shape, not $wanted"
}

# --- the shop on Compose ---------------------------------------------------------------------------

# compose ARGS...: the Compose tool on this run's project and its own environment file.
compose() {
    "${COMPOSE[@]}" -p "$PROJECT" --env-file "$WORK/env" -f deploy/compose.yaml "$@"
}

# free_port: a loopback port nothing listens on.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# compose_up: secrets of its own (deploy/make-env.sh), the gateway on a free loopback port, and
# the shop started as `depends_on: condition: service_healthy` asks. Docker Compose waits on
# those conditions itself; podman-compose on Podman 4.3 skips them with a warning (services would
# start before their database and exit on its connection timeout), so on Podman each tier of
# services starts once every service it depends on is ready, checked from out here.
compose_up() {
    SOUK_ENV_FILE=$WORK/env deploy/make-env.sh smoke-admin@example.com >/dev/null
    PORT=$(free_port)
    echo "SOUK_PUBLISH=127.0.0.1:$PORT" >>"$WORK/env"
    UP=1
    local started=$SECONDS tier
    if [[ $ENGINE == docker ]]; then
        compose_start
        wait_ready "$(compose_tiers | tr '\n' ' ')" "$started"
    else
        # On descriptor 3: podman-compose and podman exec read standard input.
        while read -r -u 3 tier; do
            # shellcheck disable=SC2086 # a tier is a list of services
            compose_start --no-deps --no-recreate $tier
            wait_ready "$tier" "$started"
        done 3< <(compose_tiers)
    fi
    # The anonymous volumes (the images' VOLUME) go when the run ends, whatever Compose does.
    record_anonymous_volumes "label=$(project_label)=$PROJECT"
    GATEWAY=$(container_of gateway)
    SUSPECT=$GATEWAY
    until [[ $(status GET '/api/v1/products?limit=1') == 200 ]]; do
        ((SECONDS - started < READY_TIMEOUT)) || die "the gateway does not serve products on :$PORT"
        sleep 1
    done
    SUSPECT=
    note "project $PROJECT: the shop answers on http://127.0.0.1:$PORT/ at $((SECONDS - started))s"
    services_reach_each_other
}

# The souk services that call one another, by name and port, as compose.yaml and the manifests
# name them.
SERVICE_ADDRESSES=(identity:8102 catalog:8101 inventory:8103 cart:8104 orders:8105 payments:8106 history:8107)

# service_container SERVICE: SERVICE's container in the phase under way (Compose or kube play).
service_container() {
    if ((KUBE_UP)); then echo "$PROJECT-$1-pod-0-$1"; else container_of "$1"; fi
}

# services_reach_each_other: waits until every service's container reaches every other service's
# /healthz by name (`souk-healthcheck`, run in the calling container: its own lookups and
# connections), and says how long that took. On Podman 4.3 a container's first calls to another
# now and then go unanswered for many seconds after the shop starts: aardvark-dns pauses while
# containers join a network (a lookup blocked 30–40 s while 8 containers started), and once a
# cart could not reach the catalog for 25 s after every name resolved promptly from another
# container. Compose's readiness says nothing about it, and no other engine has it; the
# checkout waits it out rather than judge the shop by it (docs/deploy.md, "Smoke test").
services_reach_each_other() {
    local started=$SECONDS from to pair pending=() left why tried reasons
    for from in "${SERVICE_ADDRESSES[@]}"; do
        for to in "${SERVICE_ADDRESSES[@]}"; do
            [[ $from == "$to" ]] || pending+=("${from%%:*} $to")
        done
    done
    while ((${#pending[@]})); do
        left=() reasons=()
        for pair in "${pending[@]}"; do
            read -r from to <<<"$pair"
            tried=$SECONDS
            # What failed says whose fault it is: "cannot resolve" (the network's DNS), "cannot
            # connect" or "no answer" (the callee, or the path to it), or nothing within 10 s
            # (a lookup that hangs: the resolver waiting out a DNS server that does not answer).
            if why=$(timeout 10 "$ENGINE" exec "$(service_container "$from")" \
                /usr/local/bin/souk-healthcheck "http://$to/healthz" 2>&1 >/dev/null); then
                continue
            elif (($? == 124)); then
                why="nothing within 10 s"
            fi
            left+=("$pair")
            reasons+=("$from → $to: ${why#souk-healthcheck: } ($((SECONDS - tried)) s)")
        done
        pending=("${left[@]}")
        ((${#pending[@]})) || break
        ((SECONDS - started < READY_TIMEOUT)) ||
            die "services cannot reach each other by name: $(printf '%s; ' "${reasons[@]}")"
        note "not yet reaching each other ($((SECONDS - started)) s): $(printf '%s; ' "${reasons[@]}")"
        sleep 1
    done
    note "every service reaches every other by name ($((SECONDS - started)) s)"
}

# compose_start ARGS...: `compose up -d` with ARGS; its output only when it fails.
compose_start() {
    if ! compose up -d --no-build "$@" >"$WORK/up.log" 2>&1; then
        grep -v -- ' -e ' "$WORK/up.log" | tail -n 40
        die "compose up $* failed"
    fi
}

# compose_tiers: compose.yaml's services in tiers, one line each: a tier depends only on the
# tiers before it.
compose_tiers() {
    "$CACHE/venv/bin/python" - deploy/compose.yaml <<'EOF'
import sys, yaml
services = yaml.safe_load(open(sys.argv[1]))["services"]
done = set()
while len(done) < len(services):
    tier = [name for name, s in services.items()
            if name not in done and set(s.get("depends_on") or {}) <= done]
    if not tier:
        sys.exit("compose.yaml: depends_on goes round in a circle")
    print(" ".join(tier))
    done.update(tier)
EOF
}

# container_of SERVICE: the name of SERVICE's container in this run.
container_of() {
    "$ENGINE" ps -a --filter "label=$(project_label)=$PROJECT" \
        --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -n 1
}

# healthy CONTAINER: its Compose health check passes now. Podman runs health checks on a schedule
# only through systemd, so the check is run here; Docker runs them itself.
healthy() {
    if [[ $ENGINE == podman ]]; then
        podman healthcheck run "$1" >/dev/null 2>&1
    else
        [[ $(docker inspect --format '{{.State.Health.Status}}' "$1" 2>/dev/null) == healthy ]]
    fi
}

# ready SERVICE CONTAINER: SERVICE answers its Compose health check and, for souk's services, its
# /readyz; PostgreSQL must also take connections over TCP (its socket answers while initdb runs).
ready() {
    local service=$1 container=$2 url
    healthy "$container" || return 1
    case $service in
        postgres) "$ENGINE" exec "$container" pg_isready -q -h 127.0.0.1 -U postgres ;;
        redis | nats) ;;
        *)
            url=$("$ENGINE" inspect --format '{{json .Config.Healthcheck.Test}}' "$container" |
                jq -r '.[-1]' | sed 's#/healthz$#/readyz#')
            "$ENGINE" exec "$container" /usr/local/bin/souk-healthcheck "$url" >/dev/null 2>&1
            ;;
    esac
}

# wait_ready SERVICES STARTED: each of SERVICES ready, or the run fails with its logs; times are
# counted from STARTED.
wait_ready() {
    local names=$1 started=$2 service container waited
    for service in $names; do
        container=$(container_of "$service")
        [[ -n $container ]] || die "no container for $service"
        SUSPECT=$container
        waited=$SECONDS
        until ready "$service" "$container"; do
            ((SECONDS - started < READY_TIMEOUT)) || die "$service ($container) not ready after ${READY_TIMEOUT}s"
            sleep 0.5
        done
        note "$(printf '%-10s ready at %3ss, %s' "$service" $((SECONDS - started)) "$(restarts "$container")")"
        if ((SECONDS - waited > 30)); then
            note "$service took $((SECONDS - waited))s; its last lines:"
            "$ENGINE" logs --tail 6 "$container" 2>&1 | cut -c1-300 | sed 's/^/        /'
        fi
    done
    SUSPECT=
}

# restarts CONTAINER: how often it was restarted, in words.
restarts() {
    local count
    count=$("$ENGINE" inspect --format '{{.RestartCount}}' "$1")
    if ((count == 0)); then echo "never restarted"; else echo "restarted $count times"; fi
}

# --- the checkout through the gateway ------------------------------------------------------------

# call METHOD PATH [BODY]: a request through the gateway with the shopper's token; the body
# goes to $WORK/body, the status to $CODE.
call() {
    local method=$1 path=$2 body=${3:-}
    local args=(-s -o "$WORK/body" -w '%{http_code}' -X "$method" --max-time 20)
    [[ -z ${TOKEN:-} ]] || args+=(-H "Authorization: Bearer $TOKEN")
    [[ -z ${IDEMPOTENCY_KEY:-} ]] || args+=(-H "Idempotency-Key: $IDEMPOTENCY_KEY")
    [[ -z $body ]] || args+=(-H 'Content-Type: application/json' --data "$body")
    CODE=$(curl "${args[@]}" "http://127.0.0.1:$PORT$path" || echo 000)
}

# status METHOD PATH: only the status of a request.
status() {
    call "$1" "$2"
    echo "$CODE"
}

# expect CODE WHAT: the last call answered CODE, or the run fails showing the answer.
expect() {
    [[ $CODE == "$1" ]] && return
    die "$2: wanted $1, got $CODE: $(head -c 600 "$WORK/body")"
}

# field [JQ-OPTIONS] JQ: a field of the last answer.
field() { jq -r "$@" "$WORK/body"; }

# eventually SECONDS WHAT COMMAND...: COMMAND succeeds within SECONDS.
eventually() {
    local seconds=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || die "$what: not within ${seconds}s (last answer $CODE: $(head -c 400 "$WORK/body"))"
        sleep 0.5
    done
}

# cart_total AMOUNT: the shopper's cart answers, its total AMOUNT.
cart_total() {
    call GET /api/v1/cart
    [[ $CODE == 200 && $(field .total.amount) == "$1" ]]
}

# checkout: a new shopper signs up, fills a cart, adds a card and orders; the order is
# confirmed, the cart empties, the stock goes down and the purchase shows in the history.
checkout() {
    TOKEN=
    SUSPECT=$GATEWAY
    call GET '/api/v1/products?limit=3'
    expect 200 "the product list"
    PRODUCT=$(field '.items[2].id')
    local price
    price=$(field '.items[2].price.amount')
    eventually 60 "inventory knows $PRODUCT" available_at_least 2
    local before=$AVAILABLE
    local email
    email="shopper-$(date +%s)-$RANDOM@example.com"
    call POST /api/v1/auth/register "{\"email\":\"$email\",\"password\":\"a smoke test's long passphrase\",\"name\":\"Smoke Test\"}"
    expect 201 "sign-up"
    call POST /api/v1/auth/login "{\"email\":\"$email\",\"password\":\"a smoke test's long passphrase\"}"
    expect 200 "sign-in"
    TOKEN=$(field .access_token)
    call PUT "/api/v1/cart/items/$PRODUCT" '{"quantity":2}'
    expect 200 "a cart line"
    call GET /api/v1/cart
    expect 200 "the cart"
    if [[ $(field .total.amount) != $((2 * price)) ]]; then
        # The cart answers without prices when the catalog does not answer it in 2 s (by design:
        # `degraded: ["prices"]`). On Podman a service's first connections to another now and
        # then go unanswered for seconds after the shop starts (docs/deploy.md, "Smoke test");
        # said, and waited out like a shopper reloading the page.
        local unpriced=$SECONDS
        note "the cart's first answer had no prices (degraded: $(field -c .degraded)); asking again"
        # What the cart itself meets: a name lookup and a connection to the catalog, timed.
        local started_ms outcome
        started_ms=$(date +%s%3N)
        outcome=$(timeout 30 "$ENGINE" exec "$(service_container cart)" /usr/local/bin/souk-healthcheck \
            http://catalog:8101/healthz 2>&1 && echo ok || echo "failed")
        note "from inside the cart, catalog's /healthz after $(($(date +%s%3N) - started_ms)) ms: $(echo "$outcome" | tr '\n' ' ' | head -c 300)"
        eventually 60 "the cart's total is 2 × $price" cart_total $((2 * price))
        note "the cart priced its line $((SECONDS - unpriced)) s later"
    fi
    call POST /api/v1/payment-methods '{"card_number":"4242424242424242","exp_month":12,"exp_year":2031,"cvc":"123"}'
    expect 201 "a card"
    local card
    card=$(field .id)
    IDEMPOTENCY_KEY=smoke-$RANDOM call POST /api/v1/orders \
        "{\"payment_method_id\":\"$card\",\"shipping_address\":{\"name\":\"Ada Lovelace\",\"line1\":\"12 St James's Square\",\"city\":\"London\",\"postal_code\":\"SW1Y 4JH\",\"country\":\"GB\"}}"
    expect 202 "the order"
    ORDER=$(field .id)
    eventually 60 "order $ORDER settles" settled
    [[ $(field .status) == confirmed ]] || die "order $ORDER is $(field .status): $(head -c 400 "$WORK/body")"
    [[ $(field .total.amount) == $((2 * price)) ]] || die "order total $(field .total.amount), not 2 × $price"
    note "order $ORDER confirmed: $(field .total.amount) $(field .total.currency)"
    eventually 30 "the cart empties" cart_empty
    eventually 30 "the stock goes down by 2" available_exactly $((before - 2))
    eventually 30 "the purchase shows in the history" in_history
    call GET /api/v1/orders
    expect 200 "the order list"
    [[ $(field '.items[0].id') == "$ORDER" ]] || die "the order list does not start with $ORDER"
    call GET /
    expect 200 "the storefront"
    SUSPECT=
    note "signed up, cart of 2, card, order confirmed, cart emptied, stock $before → $((before - 2)), in the history"
}

# available_at_least N: the product page says at least N units are for sale ($AVAILABLE).
available_at_least() {
    call GET "/api/v1/products/$PRODUCT/details"
    [[ $CODE == 200 ]] || return 1
    AVAILABLE=$(field '.availability.quantity // -1')
    ((AVAILABLE >= $1))
}

# available_exactly N
available_exactly() { available_at_least "$1" && ((AVAILABLE == $1)); }

# settled: the order left `pending`.
settled() {
    call GET "/api/v1/orders/$ORDER"
    [[ $CODE == 200 && $(field .status) != pending ]]
}

# cart_empty
cart_empty() {
    call GET /api/v1/cart
    [[ $CODE == 200 && $(field '.items | length') == 0 ]]
}

# in_history: the order is in the shopper's purchase history.
in_history() {
    call GET /api/v1/history
    [[ $CODE == 200 ]] && jq -e --arg id "$ORDER" 'any(.items[]; .order_id == $id)' "$WORK/body" >/dev/null
}

# --- one service down ---------------------------------------------------------------------------

# probe SERVICE: a request through the gateway that SERVICE answers.
probe() {
    case $1 in
        identity) call GET /api/v1/me ;;
        catalog) call GET '/api/v1/products?limit=1' ;;
        inventory) call GET "/api/v1/availability/$PRODUCT" ;;
        cart) call GET /api/v1/cart ;;
        payments) call GET /api/v1/payment-methods ;;
        orders) call GET /api/v1/orders ;;
        history) call GET /api/v1/history ;;
        storefront) call GET / ;;
        *) return 0 ;;
    esac
    [[ $CODE == 200 ]]
}

# outage: kill -9 the process of one service (as the kernel's OOM killer would); every other
# service keeps answering through the gateway, the product page says what it misses, and the
# restart policy brings the service back.
outage() {
    local container pid before service
    container=$(container_of "$KILL")
    SUSPECT=$container
    pid=$("$ENGINE" inspect --format '{{.State.Pid}}' "$container")
    before=$("$ENGINE" inspect --format '{{.RestartCount}}' "$container")
    local killed=$SECONDS
    kill -KILL "$pid"
    note "killed $KILL (pid $pid in $container)"
    local services
    services=$(compose_services | awk '{ print $1 }')
    for service in $services; do
        [[ $service != "$KILL" ]] || continue
        eventually 20 "$service answers while $KILL is down" probe "$service"
    done
    call GET "/api/v1/products/$PRODUCT/details"
    expect 200 "the product page while $KILL is down"
    note "all but $KILL answered; the product page said degraded $(field -c .degraded)"
    eventually "$READY_TIMEOUT" "$KILL restarted" restarted_since "$container" "$before"
    eventually "$READY_TIMEOUT" "$KILL ready again" ready "$KILL" "$container"
    eventually 60 "$KILL answers through the gateway" probe "$KILL"
    note "$KILL back after $((SECONDS - killed))s ($(restarts "$container"))"
    eventually 120 "the product page whole again" details_whole
    SUSPECT=
    note "the product page whole again after $((SECONDS - killed))s"
}

# restarted_since CONTAINER COUNT: running again, with a restart count above COUNT.
restarted_since() {
    [[ $("$ENGINE" inspect --format '{{.State.Running}} {{.RestartCount}}' "$1") == "true "* ]] &&
        (($("$ENGINE" inspect --format '{{.RestartCount}}' "$1") > $2))
}

# details_whole: the product page misses nothing.
details_whole() {
    call GET "/api/v1/products/$PRODUCT/details"
    [[ $CODE == 200 && $(field -c .degraded) == '[]' ]]
}

# --- down -----------------------------------------------------------------------------------------

# compose_down: Compose's own teardown, then anything it missed (podman-compose leaves the
# images' anonymous volumes); fails if anything of the run is left.
compose_down() {
    stop_in_order
    compose down --volumes --timeout 20 >"$WORK/down.log" 2>&1 || { tail -n 20 "$WORK/down.log"; die "compose down failed"; }
    local left
    left=$(leftovers)
    if [[ -n $left ]]; then
        note "left by compose down, removed here: $(echo "$left" | tr '\n' ' ')"
        remove_project "$PROJECT"
        remove_anonymous_volumes
    fi
    UP=0
    left=$(leftovers)
    [[ -z $left ]] || die "still there after teardown: $left"
    note "nothing of $PROJECT is left"
}

# stop_in_order: the shop stopped as Docker Compose's `down` stops it — the last tier first,
# each tier at once — each container timed: a souk service is to finish its in-flight work and
# exit on SIGTERM well within its stop_grace_period (15 s), so one still running after 10 s, or
# killed, is reported with its last words. (podman-compose stops every container at once: then
# services lose PostgreSQL and NATS while they drain.)
stop_in_order() {
    local tier service container
    while read -r -u 3 tier; do
        for service in $tier; do
            container=$(container_of "$service")
            [[ -n $container ]] || continue
            (
                local start
                start=$(date +%s%N)
                "$ENGINE" stop --time 20 "$container" >/dev/null 2>&1
                printf '%s %s %s\n' "$container" $((($(date +%s%N) - start) / 1000000)) \
                    "$("$ENGINE" inspect --format '{{.State.ExitCode}}' "$container")"
            ) >>"$WORK/stops" &
        done
        wait
    done 3< <(compose_tiers | tac)
    local name ms code slow=0
    while read -r -u 3 name ms code; do
        if ((ms > 10000)) || [[ $code == 137 ]]; then
            note "slow stop: $name took ${ms} ms (exit code $code); its last lines:"
            "$ENGINE" logs --tail 5 "$name" 2>&1 | sed 's/^/        /'
            slow=1
        fi
    done 3< <(sort -k2 -n "$WORK/stops")
    ((slow)) || note "every container stopped on SIGTERM within 10 s (slowest: $(sort -k2 -n "$WORK/stops" | tail -n 1 | awk '{ print $1, $2 " ms" }'))"
    rm -f "$WORK/stops"
}

# --- Kubernetes' dev overlay on podman kube play ------------------------------------------------

# kube_play: the rendered dev overlay on `podman kube play`. Podman plays Deployments but has no
# Services, cluster DNS, NetworkPolicies or Secret objects: deploy/smoke-kube.py splits the
# overlay into one file per Deployment and the Secrets they name, each pod joins one network
# under its Service names (`<name>`, `<name>-headless`) as aliases, the backends under the
# in-cluster names the manifests and Secrets use. Then every pod must become ready and the shop
# must take an order through its gateway; what podman refused or ignores is reported.
kube_play() {
    local dir=$WORK/kube network=$PROJECT-kube
    mkdir -p "$dir"
    kubectl kustomize deploy/k8s/overlays/dev >"$dir/rendered.yaml" 2>"$dir/kustomize.log" ||
        { cat "$dir/kustomize.log"; die "kubectl kustomize deploy/k8s/overlays/dev failed"; }
    PORT=$(free_port)
    "$CACHE/venv/bin/python" deploy/smoke-kube.py "$dir/rendered.yaml" "$WORK/env" "$dir" "$PROJECT" "$PORT" >"$dir/plan"
    KUBE_UP=1
    # kube play makes this network whatever --network says; it goes if it was not there before.
    podman network exists podman-default-kube-network || KUBE_NETWORK=podman-default-kube-network
    podman network create --label "souk.smoke=$PROJECT" "$network" >/dev/null
    kube_backends "$network"
    local kind name file
    while read -r -u 3 kind name file; do
        [[ $kind == secret ]] && podman secret create "$name" "$file" >/dev/null
    done 3<"$dir/plan"
    # In Compose's tiers, each once the one before is ready, as the Compose phase starts them:
    # a Service name exists before its pods in a cluster, but podman gives a pod its names only
    # when it starts.
    local started=$SECONDS tier
    while read -r -u 4 tier; do
        for name in $tier; do
            kube_play_one "$dir" "$network" "$name"
        done
        for name in $tier; do
            kube_wait_ready "$dir" "$name" "$started"
        done
    done 4< <(compose_tiers)
    record_anonymous_volumes "label=souk.smoke=$PROJECT"
    GATEWAY=$PROJECT-gateway-pod-0-gateway
    SUSPECT=$GATEWAY
    eventually 60 "the kube gateway serves products" kube_answers
    services_reach_each_other
    checkout
    kube_report "$dir/plan" "$PROJECT-catalog-pod-0-catalog"
    kube_down
    local left
    left=$(leftovers)
    [[ -z $left ]] || die "still there after kube down: $left"
    note "nothing of the kube play is left"
}

# kube_play_one DIR NETWORK NAME: `podman kube play` of Deployment NAME (nothing for a name the
# overlay has no Deployment of: the backends), under its Service names on NETWORK.
kube_play_one() {
    local dir=$1 network=$2 want=$3 kind name file container url live aliases
    while read -r -u 3 kind name file container url live aliases; do
        [[ $kind == deployment && $name == "$want" ]] || continue
        if ! podman kube play --network "$network:alias=${aliases//,/,alias=}" \
            --configmap "$dir/configmaps.yaml" "$file" >"$dir/play-$name.log" 2>&1; then
            SUSPECT=$container
            cat "$dir/play-$name.log"
            die "podman kube play refused the $name Deployment"
        fi
        grep -ih 'warn' "$dir/play-$name.log" | sed "s/^/    $name: /" || true
    done 3<"$dir/plan"
}

# kube_wait_ready DIR NAME STARTED: Deployment NAME's pod ready and alive, probed as a kubelet
# would: podman runs no readinessProbe, and turns the livenessProbe into a curl in the
# container, which the distroless image has not.
kube_wait_ready() {
    local dir=$1 want=$2 started=$3 kind name file container url live aliases
    while read -r -u 3 kind name file container url live aliases; do
        [[ $kind == deployment && $name == "$want" ]] || continue
        SUSPECT=$container
        until podman exec "$container" /usr/local/bin/souk-healthcheck "$url" >/dev/null 2>&1; do
            ((SECONDS - started < READY_TIMEOUT)) || die "pod $name not ready ($url) after ${READY_TIMEOUT}s"
            sleep 0.5
        done
        podman exec "$container" /usr/local/bin/souk-healthcheck "$live" >/dev/null ||
            die "pod $name is ready but not alive ($live)"
        note "$(printf '%-10s ready at %3ss (%s)' "$name" $((SECONDS - started)) "$url")"
        SUSPECT=
    done 3<"$dir/plan"
}

# kube_answers: the gateway of the kube play answers on its published loopback port.
kube_answers() { [[ $(status GET '/api/v1/products?limit=1') == 200 ]]; }

# kube_backends NETWORK: PostgreSQL, Redis and NATS, as Compose runs them, under the names the
# manifests and their Secrets use in a cluster (docs/deploy.md, "Prerequisites").
kube_backends() {
    local network=$1 common
    common=(-d --label "souk.smoke=$PROJECT" --network "$network" --env-file "$WORK/env")
    local postgres_password
    postgres_password=$(sed -n 's/^SOUK_POSTGRES_PASSWORD=//p' "$WORK/env")
    run_backend "$PROJECT-kube-postgres" "${common[@]}" --network-alias souk-postgres-rw \
        -e "POSTGRES_PASSWORD=$postgres_password" \
        -v "$ROOT/deploy/postgres/init-databases.sh:/docker-entrypoint-initdb.d/10-souk-databases.sh:ro" \
        "$(compose_image postgres)"
    run_backend "$PROJECT-kube-redis" "${common[@]}" --network-alias redis-master.redis.svc.cluster.local \
        "$(compose_image redis)" redis-server
    run_backend "$PROJECT-kube-nats" "${common[@]}" --network-alias nats.nats.svc.cluster.local \
        -v "$ROOT/deploy/compose/nats.conf:/etc/nats/nats.conf:ro" \
        -v "$ROOT/deploy/nats/souk-users.conf:/etc/nats/souk-users.conf:ro" \
        "$(compose_image nats)" --config /etc/nats/nats.conf
    local started=$SECONDS
    SUSPECT=$PROJECT-kube-postgres
    until podman exec "$PROJECT-kube-postgres" pg_isready -q -h 127.0.0.1 -U postgres 2>/dev/null &&
        podman exec "$PROJECT-kube-redis" redis-cli ping >/dev/null 2>&1 &&
        podman exec "$PROJECT-kube-nats" wget -q -O /dev/null http://127.0.0.1:8222/healthz 2>/dev/null; do
        ((SECONDS - started < READY_TIMEOUT)) || die "the kube play's backends are not ready"
        sleep 1
    done
    SUSPECT=
    note "backends ready at $((SECONDS - started))s: souk-postgres-rw, redis-master.redis…, nats.nats…"
}

# run_backend NAME ARGS...: `podman run --name NAME ARGS...`, quietly unless it fails.
run_backend() {
    local name=$1
    shift
    podman run --name "$name" "$@" >"$WORK/run.log" 2>&1 || { cat "$WORK/run.log"; die "cannot start $name"; }
}

# kube_report PLAN CONTAINER: what podman did not play, and what it kept of one pod's hardening.
kube_report() {
    local plan=$1 container=$2
    awk '$1 == "refused" { printf "    not played (podman has no such kind): %s x%s\n", $2, $3 }' "$plan"
    awk '$1 == "ignored" { printf "    ignored by podman 4.3 kube play: %s (%s)\n", $2, $3 }' "$plan"
    note "what $container got: $(podman inspect --format \
        'user {{.Config.User}}, read-only root {{.HostConfig.ReadonlyRootfs}}, capabilities {{.EffectiveCaps}}, security {{.HostConfig.SecurityOpt}}, memory limit {{.HostConfig.Memory}}, CPU quota {{.HostConfig.CpuQuota}}/{{.HostConfig.CpuPeriod}}' \
        "$container")"
    note "its livenessProbe became the health check $(podman inspect --format '{{json .Config.Healthcheck.Test}}' "$container")"
}

# kube_down: the kube play's pods, backends, secrets and network.
kube_down() {
    local kind name file
    if [[ -f $WORK/kube/plan ]]; then
        while read -r -u 3 kind name file _; do
            [[ $kind != deployment ]] || podman kube down "$file" >/dev/null 2>&1 || true
        done 3<"$WORK/kube/plan"
    fi
    remove_project "$PROJECT"
    remove_anonymous_volumes
    # The volumes podman makes of the ConfigMaps (it names them after them).
    if [[ -f $WORK/kube/plan ]]; then
        awk '$1 == "configmap" { print $2 }' "$WORK/kube/plan" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
    fi
    [[ -z $KUBE_NETWORK ]] || podman network rm "$KUBE_NETWORK" >/dev/null 2>&1 || true
    KUBE_UP=0
}

# record_anonymous_volumes FILTER: the unnamed volumes of the containers FILTER selects, to be
# removed with them (the images' VOLUME /var/lib/souk).
record_anonymous_volumes() {
    local id
    for id in $("$ENGINE" ps -aq --filter "$1"); do
        "$ENGINE" inspect --format '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}' "$id"
    done | tr ' ' '\n' | grep -E '^[0-9a-f]{64}$' >>"$WORK/anonymous-volumes" || true
}

# --- the run ------------------------------------------------------------------------------------

# summary: the images' sizes and each phase's time.
summary() {
    log "summary (${SECONDS}s in all, binaries: $BINARIES, engine: $ENGINE)"
    printf '    %s\n' "${SIZES[@]}"
    printf '    %s\n' "${PHASES[@]}"
    echo "smoke: passed"
}

main() {
    parse_args "$@"
    trap on_exit EXIT
    trap 'exit 130' INT TERM
    phase engine find_engine
    remove_stale_runs
    phase bases ensure_bases
    phase binaries collect_binaries
    phase images build_images
    phase up compose_up
    phase checkout checkout
    phase outage outage
    phase down compose_down
    if ((KUBE)); then phase kube kube_play; fi
    summary
}

main "$@"
