# syntax=docker/dockerfile:1.7
# ScanRelay site gateway agent, for sites that run containers (deploy/systemd/ is the usual install). Build
# from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t scanrelay/gateway .
#   docker run --rm -v gw-state:/var/lib/scanrelay-gateway scanrelay/gateway activate --relay https://relay.example --code CODE
#   docker run -d -v gw-state:/var/lib/scanrelay-gateway -p 11112:11112 --env-file gateway.env scanrelay/gateway run
#
# Same base as the relay (Node 24, Debian 13 trixie, glibc 2.41): one runtime to patch across the fleet.
ARG NODE_IMAGE=node:24-trixie-slim

# ── build ──────────────────────────────────────────────────────────────────────────────────────────────────
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

# ── runtime: the agent's production dependencies and compiled JavaScript only ─────────────────────────────
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    SCANRELAY_GATEWAY_STATE_DIR=/var/lib/scanrelay-gateway \
    SCANRELAY_GATEWAY_DICOM_PORT=11112
WORKDIR /app
COPY package.json package-lock.json ./
COPY relay/package.json relay/
COPY relay/protocol/package.json relay/protocol/
COPY gateway-agent/package.json gateway-agent/
COPY web-client/package.json web-client/
COPY bench/package.json bench/
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --no-audit --no-fund --workspace @scanrelay/gateway-agent --include-workspace-root=false \
    && rm -rf web-client bench \
    && mkdir -p /var/lib/scanrelay-gateway && chown node:node /var/lib/scanrelay-gateway \
    && chmod 0700 /var/lib/scanrelay-gateway
COPY --from=build /src/relay/protocol/dist relay/protocol/dist
COPY --from=build /src/gateway-agent/dist gateway-agent/dist
# Unprivileged: the DICOM port is above 1024 (11112); map 104 → 11112 on the host if a modality insists.
USER node
# Key pair, identity, outbox and replay guard: must survive container replacement.
VOLUME ["/var/lib/scanrelay-gateway"]
EXPOSE 11112
# The agent's health is its link to the relay, proven by heartbeats; here we only check the process answers.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["node", "-e", "require('node:net').connect(+(process.env.SCANRELAY_GATEWAY_DICOM_PORT||11112),'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "gateway-agent/dist/cli.js"]
CMD ["run"]
