// Package k8s holds the tests of the Kubernetes deployment: the kustomize
// overlays in this folder (base, dev, prod), built with the kustomize API as
// skaffold builds them, the optional monitoring kustomization and its
// Grafana dashboard (checked against docs/observability.md), skaffold.yaml,
// the kind cluster configuration, the Dockerfile and .dockerignore. There is no cluster, Docker engine or
// skaffold binary where they run, so they test the files themselves, against
// the real Kubernetes API types, the services' own configuration loaders, the
// local stack's (`make dev`) settings and a real build of every image's
// binary, for amd64 and arm64.
package k8s
