# syntax=docker/dockerfile:1.7
# ScanRelay relay node. Build from the repository root:
#   docker build -f deploy/docker/relay.Dockerfile -t scanrelay/relay .
#
# Base: Node 24 on Debian 13 "trixie" (glibc 2.41). The current uWebSockets.js binaries are linked against
# glibc ≥ 2.38, so on bookworm (2.36) or Alpine (musl) the native transport cannot load and the relay would
# silently run on the slower `ws` transport. Pin the digest in your registry mirror for reproducible builds.
ARG NODE_IMAGE=node:24-trixie-slim

# ── build: full dev toolchain, compiles every workspace (`npm run build` = `tsc -b`) ─────────────────────────
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Manifests first so the dependency layer is cached until package-lock.json changes.
COPY package.json package-lock.json ./
COPY relay/package.json relay/
COPY relay/protocol/package.json relay/protocol/
COPY gateway-agent/package.json gateway-agent/
COPY web-client/package.json web-client/
COPY bench/package.json bench/
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.base.json tsconfig.json ./
COPY relay relay
COPY gateway-agent gateway-agent
COPY web-client web-client
COPY bench bench
RUN npm run build

# ── runtime: production dependencies of the relay only, compiled JavaScript, no compiler, no sources ────────
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    SCANRELAY_HOST=0.0.0.0 \
    SCANRELAY_PORT=8080 \
    SCANRELAY_DATA_DIR=/var/lib/scanrelay
WORKDIR /app
COPY package.json package-lock.json ./
COPY relay/package.json relay/
COPY relay/protocol/package.json relay/protocol/
COPY gateway-agent/package.json gateway-agent/
COPY web-client/package.json web-client/
COPY bench/package.json bench/
# uWebSockets.js ships prebuilt binaries for every platform and Node ABI (~110 MB); keep only the one this
# image's Node can load, if there is one (without it the relay runs its `ws` transport).
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --no-audit --no-fund --workspace @scanrelay/relay --include-workspace-root=false \
    && keep="uws_$(node -p 'process.platform+"_"+process.arch+"_"+process.versions.modules').node" \
    && find node_modules -path '*uWebSockets.js*' -name 'uws_*.node' ! -name "$keep" -delete \
    && rm -rf gateway-agent web-client bench \
    && mkdir -p /var/lib/scanrelay && chown node:node /var/lib/scanrelay
COPY --from=build /src/relay/protocol/dist relay/protocol/dist
COPY --from=build /src/relay/dist relay/dist
# The image's own unprivileged user (uid 1000); the root filesystem can be mounted read-only: only the data
# dir (embedded registry when no Redis is configured) is written.
USER node
VOLUME ["/var/lib/scanrelay"]
EXPOSE 8080
# Liveness only: readiness (/readyz: Redis reachable, not draining) is for the proxy and Kubernetes to decide.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.SCANRELAY_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Node is PID 1 so SIGTERM reaches the relay directly: it stops taking connections, closes clients with 1001
# (reconnect elsewhere) and exits. Give it the time it needs: `stop_grace_period` / terminationGracePeriodSeconds.
STOPSIGNAL SIGTERM
# --max-semi-space-size=1: the same Node flags as relay/src/main.ts's shebang (a small young generation: ~4 KiB
# instead of ~7 KiB RSS per idle connection, no fan-out CPU cost; bench/README.md "Memory"). Keep the two in step.
ENTRYPOINT ["node", "--max-semi-space-size=1", "relay/dist/main.js"]
