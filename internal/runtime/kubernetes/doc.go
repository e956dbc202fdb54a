// Package kubernetes runs socle's units on Kubernetes clusters: it renders a
// unit (its Score workload and socle.yaml, resolved as a plan.Unit) into a
// Deployment per release, a Service, a PodDisruptionBudget, autoscalers and
// the ConfigMaps and Secrets its pods mount; applies them with server-side
// apply under the field manager "socle", recording every object in an
// inventory (a Secret beside them) so that what leaves Git is pruned
// exactly; observes health from the objects' status and drift by comparing
// the live objects with what socle applies; and restores an earlier release
// after a failed rollout. It implements runtime.UnitDriver, one Driver per
// kubeconfig context, each with its own client and rate limits.
//
// # Rollouts
//
// A rolling release replaces the pod template of the unit's Deployment
// (<app>) and Kubernetes rolls it with maxSurge and maxUnavailable from
// socle.yaml. Blue/green and canary releases get a Deployment of their own
// (<app>-<release>): blue/green moves the Service's selector from the old
// release to the new one once the new one is healthy; a canary runs beside
// the old release with the Service selecting both, so that each release's
// share of requests is its share of ready pods (a weight of 10% beside 9
// pods is 1 pod; with fewer pods the share is coarser). The reconciler drives
// the steps and rolls back (Restore) when the new release does not become
// healthy; a canary's analysis of error rates and latency needs socle's
// proxy, which cluster traffic does not cross, so on Kubernetes a canary
// step passes when its pods stay available.
//
// # Weighted canaries with the Gateway API
//
// Exact weights need a router that splits requests, not pods. A cluster
// needs the Gateway API (gateway.networking.k8s.io/v1 HTTPRoutes), an
// implementation of it (Envoy Gateway, Istio, Cilium, NGINX Gateway
// Fabric…) and a Gateway the platform team owns, which the environment
// names in socle.yaml:
//
//	runtime: {type: kubernetes, context: prod, namespace: shop,
//	          gateway: {name: public, namespace: gateways, domain: shop.example.com}}
//
// Each unit with ports then gets an HTTPRoute for <app>.<domain> attached
// to that Gateway, to the unit's Service. During a canary step the unit's
// Service keeps selecting the serving release, the canary gets a Service of
// its own (<app>-<release>), and the route's two backendRefs carry the
// step's weights (10 and 90); the final step routes everything to the
// unit's Service, which then selects the new release, and the canary's own
// Service is pruned. The driver asks the cluster whether it serves
// HTTPRoutes (again every minute until it does): without the API, or
// without a gateway in socle.yaml, canaries split by numbers of pods.
//
// # Images
//
// Each container runs the digest its release pins for it
// (runtime.Workload.Images): socle's build as
// <runtime.registry>/apps/<app>@sha256:…, an external image in its own
// repository. socle's registry refuses anonymous reads, so a unit that runs
// socle's build gets a kubernetes.io/dockerconfigjson Secret,
// <app>-registry-pull, named in its pods' imagePullSecrets, holding a token
// that reads /v2/apps/<app>/ and nothing else (Options.PullToken; the
// server derives and rotates it).
package kubernetes
