module github.com/pullfix/pullfix

go 1.26.0

require (
	github.com/distribution/reference v0.6.0 // indirect
	github.com/google/go-containerregistry v0.22.1 // indirect
	github.com/gorilla/websocket v1.5.4-0.20250319132907-e064f32e3674 // indirect
	github.com/kelseyhightower/envconfig v1.4.0 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/slack-go/slack v0.35.0 // indirect
	golang.org/x/net v0.57.0 // indirect
	k8s.io/api v0.37.2 // indirect
	k8s.io/apimachinery v0.37.2 // indirect
	k8s.io/client-go v0.37.2 // indirect
)
