# syntax=docker/dockerfile:1.7
# One image for every Integration Hub service. Each Deployment picks its entry point by argument:
#   node dist/services/<service>/main.js   (api, allio-sync, mq-bridge, kitchen, operator, auth)
#   node dist/services/cli/main.js migrate (the chart's migration hook)
# Node.js 22 LTS: 20 is past its end of life, and oidc-provider (the development authorization
# server) supports 22 and later.
ARG NODE_VERSION=22.21

# Build: full dependencies, the entry points the chart starts compiled to dist/ (tsconfig.image.json:
# not the development stack, simulators or benchmarks) with the run-time assets (Lua scripts, the
# kitchen's Protobuf schema and XML Schema).
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json tsconfig.image.json ./
COPY scripts ./scripts
COPY proto ./proto
COPY services ./services
RUN npx tsc -p tsconfig.image.json && node scripts/copy-assets.js

# Production dependencies only, without the dev tools (TypeScript, Jest, helm, kubectl).
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps
WORKDIR /app
# tini reaps zombies and forwards SIGTERM to node, so graceful shutdown runs in every pod.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 hub \
 && useradd --system --uid 10001 --gid hub --home-dir /app --shell /usr/sbin/nologin hub
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root bin ./bin
# The code is owned by root and read-only for the service user; the chart also mounts the root
# filesystem read-only.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "node"]
CMD ["dist/services/api/main.js"]
