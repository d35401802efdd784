// Package deploy holds the tests of the deployment artifacts: the
// Dockerfile, docker-compose.yml and the Helm chart. They check offline what
// can be checked without a Docker engine or a Kubernetes cluster.
package deploy
