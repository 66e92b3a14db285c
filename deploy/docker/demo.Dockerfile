# syntax=docker/dockerfile:1.7
# ScanRelay demo manage app (deploy/docker/demo-main.mjs): signs command and session tokens with its key,
# serves the live clinic page.
# Build from the repository root:
#   docker build -f deploy/docker/demo.Dockerfile -t scanrelay/demo .
#
# Same base as the relay (Node 24, Debian 13 trixie, glibc 2.41).
ARG NODE_IMAGE=node:24-trixie-slim

# ── build: compiles every workspace; the page bundle is produced by the web-client build ────────────────────
FROM ${NODE_IMAGE} AS build
WORKDIR /src
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

# ── runtime: the web client's production dependencies, compiled output, and the page's sources ──────────────
# The demo server bundles its page with esbuild (a dependency of web-client) when it starts
# (web-client/demo/bundle.ts), so this image also carries the TypeScript sources the page is built from.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    SCANRELAY_DEMO_PORT=8080 \
    SCANRELAY_DEMO_DATA_DIR=/var/lib/scanrelay-demo
WORKDIR /app
COPY package.json package-lock.json ./
COPY relay/package.json relay/
COPY relay/protocol/package.json relay/protocol/
COPY gateway-agent/package.json gateway-agent/
COPY web-client/package.json web-client/
COPY bench/package.json bench/
# web-client depends on the relay and gateway workspaces (for the one-process `npm start` stack, which this
# image does not run): drop their sources and the uWebSockets.js binaries this Node cannot load.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --no-audit --no-fund --workspace @scanrelay/web-client --include-workspace-root=false \
    && keep="uws_$(node -p 'process.platform+"_"+process.arch+"_"+process.versions.modules').node" \
    && find node_modules -path '*uWebSockets.js*' -name 'uws_*.node' ! -name "$keep" -delete \
    && rm -rf gateway-agent bench \
    && mkdir -p /var/lib/scanrelay-demo && chown node:node /var/lib/scanrelay-demo
COPY --from=build /src/relay/protocol/dist relay/protocol/dist
COPY --from=build /src/web-client/dist web-client/dist
COPY relay/protocol/src relay/protocol/src
COPY web-client/src web-client/src
COPY web-client/demo web-client/demo
COPY deploy/docker/demo-main.mjs deploy/docker/demo-main.mjs
USER node
VOLUME ["/var/lib/scanrelay-demo"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.SCANRELAY_DEMO_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "deploy/docker/demo-main.mjs"]
