# tsraft: one cluster member per container (`tsraft node`). compose.yaml runs three.
#   docker build -t tsraft .            (or: npm run docker:build)
#   docker run --rm tsraft --help
# The build stage compiles with the dev dependencies; the image keeps only the compiled package
# and its runtime dependencies.

FROM node:20-bookworm-slim AS build
WORKDIR /src
# The lock file first, so that a change to the sources does not repeat the install.
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` builds, and the sources are not here yet.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/ui ./dist/ui
# A named volume mounted here starts with this directory's owner, so the unprivileged user can write.
RUN mkdir /data && chown node:node /data
USER node
VOLUME /data
# Raft (TCP) and the HTTP API, as compose.yaml uses them.
EXPOSE 7000 8000
# node is PID 1 and handles SIGTERM itself: `docker stop` makes a leader hand over, then exit.
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["--help"]
