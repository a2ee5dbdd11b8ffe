# syntax=docker/dockerfile:1
# pullfix: one static binary on distroless, non-root, no shell.
#
#   docker build --build-arg VERSION=v0.1.0 -t pullfix:v0.1.0 .
#
# internal/testenv/chart's TestDockerfileBuild reads the build RUN line below
# and runs exactly it, so what this file builds is what the tests check
# (static binary, stamped version, USER matching the Helm chart).

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not re-download them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/bot ./cmd/bot

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bot /bot
# 65532 is distroless's "nonroot"; charts/pullfix runs the pod as the same user.
USER 65532:65532
ENTRYPOINT ["/bot"]
CMD ["run"]
