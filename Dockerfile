# contrail: a Jetstream-compatible JSON firehose gateway.
#   docker build -t contrail . && docker run -p 6008:6008 -p 6009:6009 -v contrail-data:/data contrail
# Node 20: the last line uWebSockets.js (the fast transport) has a native build for.
FROM node:20-bookworm-slim
# zstd-napi compiles its native addon at install time.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY src ./src
# npm ci builds dist/ (the `prepare` script, with the dev dependencies); only runtime ones stay.
RUN npm ci && npm prune --omit=dev && npm cache clean --force
COPY dictionaries ./dictionaries
ENV CONTRAIL_DATA_DIR=/data CONTRAIL_HOST=0.0.0.0 NODE_ENV=production
RUN mkdir -p /data && chown node:node /data
VOLUME /data
EXPOSE 6008 6009
USER node
ENTRYPOINT ["node", "--max-semi-space-size=64", "dist/cli.js"]
CMD ["serve"]
