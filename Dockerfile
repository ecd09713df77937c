# One image for the cloud, the edge agents (edge/fleet.ts), the simulator and Node-RED with our flows
# (node-red is a dependency); the command picks which (see docker-compose.yml). Node LTS on Debian.
FROM node:22.11.0-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 is a native addon; these build it when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:22.11.0-bookworm-slim
ENV NODE_ENV=production DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY contract ./contract
COPY shared ./shared
COPY cloud ./cloud
COPY edge ./edge
COPY simulators ./simulators
COPY config ./config
COPY flows ./flows
# /data: the state of whichever process runs (a named volume in docker-compose.yml).
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080 1883 8083 8883
# The cloud's /healthz; docker-compose.yml gives the other processes their own checks.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "--max-semi-space-size=32", "--no-allocation-site-pretenuring", "--import", "tsx", "cloud/main.ts"]
