# contrail: a Jetstream-compatible JSON firehose gateway.
#   docker build -t contrail .
#   docker run -d -p 6008:6008 -p 127.0.0.1:6009:6009 -v contrail-data:/data contrail
# /subscribe on 6008 for everyone; Prometheus metrics on 6009 published to the host's loopback only.
# Node 20: the last line uWebSockets.js (the fast transport) has a native build for.

# Build stage: zstd-napi compiles its native addon at install time, and `npm ci` builds dist/
# (the `prepare` script, with the dev dependencies); compilers and dev dependencies stay here.
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY src ./src
RUN npm ci && npm prune --omit=dev && npm cache clean --force

# Run stage: Node, the runtime modules, the compiled gateway and its dictionary; nothing else.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production CONTRAIL_DATA_DIR=/data CONTRAIL_HOST=0.0.0.0
COPY package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY dictionaries ./dictionaries
RUN mkdir -p /data && chown node:node /data
VOLUME /data
EXPOSE 6008 6009
USER node
# /health answers while the process serves; /ready (upstream connected) is for load balancers,
# since a restart would not bring a lost upstream back.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const p = Number(process.env.CONTRAIL_PORT) || 6008; fetch(`http://127.0.0.1:${p}/health`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "--max-semi-space-size=64", "dist/cli.js"]
CMD ["serve"]
