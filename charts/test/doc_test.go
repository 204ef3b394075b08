// Package charttest checks charts/jwt-sidecar, deploy/examples and the
// Dockerfile without a cluster or a container engine: Helm as a library renders
// and lints the chart, and kubeconform validates every manifest strictly
// against schemas built from the Kubernetes v1.37 OpenAPI document and the
// Prometheus Operator and cert-manager CRDs, all fetched as Go modules.
package charttest
