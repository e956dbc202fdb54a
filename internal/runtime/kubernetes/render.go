package kubernetes

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/score-spec/score-go/framework"
	"github.com/score-spec/score-go/types"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
)

// Labels socle puts on every object it applies. The app.kubernetes.io ones
// are Kubernetes' recommended labels, for other tools; socle selects by its
// own.
const (
	LabelApp        = "socle.dev/app"
	LabelEnv        = "socle.dev/env"
	LabelTeam       = "socle.dev/team"
	LabelRelease    = "socle.dev/release"
	LabelRevision   = "socle.dev/revision"
	LabelDeployment = "socle.dev/deployment"
	LabelInventory  = "socle.dev/inventory"

	AnnotationArtifact = "socle.dev/artifact"
	AnnotationRevision = "socle.dev/revision"

	labelName      = "app.kubernetes.io/name"
	labelInstance  = "app.kubernetes.io/instance"
	labelManagedBy = "app.kubernetes.io/managed-by"
)

// RenderOptions is what rendering needs besides the unit.
type RenderOptions struct {
	// Namespace the objects go to.
	Namespace string
	// Registry is the host (and path prefix) from which the cluster pulls
	// the images socle builds: a workload runs <Registry>/apps/<app>@<digest>.
	Registry string
	// Secret derives the credentials of the unit's resources (see
	// runtime.ResourcePassword).
	Secret []byte
	// PullToken, when set, is the token with which the cluster pulls the
	// unit's images from the registry (a socle token that reads the app's
	// repositories only): a unit that runs socle's build gets a
	// kubernetes.io/dockerconfigjson Secret, <app>-registry-pull, holding
	// it for Registry, and its pods name that Secret in imagePullSecrets.
	// Without it pods pull anonymously, which socle's registry refuses.
	PullToken string
	// Redact writes REDACTED instead of every secret value, for people to
	// read (socle render).
	Redact bool
	// ProgressDeadline is how long a Deployment may take to make progress
	// before Kubernetes, and socle, call its rollout failed (default 10m).
	ProgressDeadline time.Duration
	// Gateway, when set, is the Gateway API Gateway the unit's HTTPRoute
	// attaches to; canary steps then split requests by weight.
	Gateway *Gateway
}

// Object is one rendered Kubernetes object, and the release it belongs to
// ("" for the objects every release of the unit shares: its Service and
// PodDisruptionBudget).
type Object struct {
	*unstructured.Unstructured
	Release string
}

// Render returns a unit's objects in the order they are applied: what pods
// mount (ConfigMaps, Secrets) before the Deployments that mount it, then the
// Services, the HTTPRoute, the PodDisruptionBudget and the autoscalers of
// the Deployments.
// The first workload of spec gives the shared objects. Errors wrap
// runtime.ErrInvalidUnit and name the field.
func Render(spec runtime.UnitSpec, opts RenderOptions) ([]Object, error) {
	if len(spec.Workloads) == 0 {
		return nil, fmt.Errorf("%w: unit %s.%s has no workload", runtime.ErrInvalidUnit, spec.App, spec.Env)
	}
	if opts.ProgressDeadline <= 0 {
		opts.ProgressDeadline = 10 * time.Minute
	}
	var mounted, deployments, scalers []Object
	for _, w := range spec.Workloads {
		if w.Unit == nil {
			return nil, fmt.Errorf("%w: release %s of %s.%s has no unit", runtime.ErrInvalidUnit, w.Release, spec.App, spec.Env)
		}
		r := renderer{spec: &spec, w: &w, u: w.Unit, opts: &opts}
		objs, err := r.workload()
		if err != nil {
			return nil, fmt.Errorf("%w: %s.%s release %s: %w", runtime.ErrInvalidUnit, spec.App, spec.Env, w.Release, err)
		}
		for _, o := range objs {
			o := Object{o, w.Release}
			switch o.GetKind() {
			case "Deployment":
				deployments = append(deployments, o)
			case "HorizontalPodAutoscaler":
				scalers = append(scalers, o)
			default:
				mounted = append(mounted, o)
			}
		}
	}
	// Pods pull with the Secret, so it goes first.
	pull, err := pullSecret(spec, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %s.%s: %w", runtime.ErrInvalidUnit, spec.App, spec.Env, err)
	}
	if pull != nil {
		mounted = append([]Object{{pull, ""}}, mounted...)
	}
	first := renderer{spec: &spec, w: &spec.Workloads[0], u: spec.Workloads[0].Unit, opts: &opts}
	shared, err := first.shared()
	if err != nil {
		return nil, fmt.Errorf("%w: %s.%s: %w", runtime.ErrInvalidUnit, spec.App, spec.Env, err)
	}
	out := slices.Concat(mounted, deployments, shared)
	return append(out, scalers...), nil
}

// renderer renders one workload of a unit.
type renderer struct {
	spec *runtime.UnitSpec
	w    *runtime.Workload
	u    *plan.Unit
	opts *RenderOptions
}

// DeploymentName is the name of a workload's Deployment: the app's for a
// rolling one, <app>-<release> for a dedicated one.
func DeploymentName(app string, w runtime.Workload) string {
	if w.Dedicated {
		return app + "-" + strings.ToLower(w.Release)
	}
	return app
}

func (r *renderer) name() string { return DeploymentName(r.u.App, *r.w) }

// labels are the labels of every object of the unit.
func (r *renderer) labels() map[string]string {
	l := map[string]string{
		labelName: r.u.App, labelInstance: r.u.App + "-" + r.u.Env, labelManagedBy: "socle",
		LabelApp: r.u.App, LabelEnv: r.u.Env, LabelRelease: r.w.Release,
	}
	if r.u.Team != "" {
		l[LabelTeam] = r.u.Team
	}
	if revisionRE.MatchString(r.u.Revision) {
		l[LabelRevision] = r.u.Revision
	}
	return l
}

var revisionRE = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

func (r *renderer) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: r.opts.Namespace, Labels: r.labels()}
}

// selector selects the pods of the unit, of every release.
func (r *renderer) selector() map[string]string {
	return map[string]string{LabelApp: r.u.App, LabelEnv: r.u.Env}
}

// workload renders a release's ConfigMap and Secret (when it has files or
// secrets), Deployment and autoscaler.
func (r *renderer) workload() ([]*unstructured.Unstructured, error) {
	data := &podData{}
	names := slices.Sorted(maps.Keys(r.u.Containers))
	if len(names) == 0 {
		return nil, errors.New("containers: the workload has none")
	}
	subst := r.substitution(data)
	var containers []corev1.Container
	for i, cname := range names {
		c, err := r.container(cname, r.u.Containers[cname], i == 0, data, subst)
		if err != nil {
			return nil, fmt.Errorf("containers.%s: %w", cname, err)
		}
		containers = append(containers, c)
	}
	var out []*unstructured.Unstructured
	pod := corev1.PodSpec{
		Containers:                   containers,
		EnableServiceLinks:           new(false),
		AutomountServiceAccountToken: new(false),
	}
	if r.opts.PullToken != "" && runsBuild(*r.w) {
		pod.ImagePullSecrets = []corev1.LocalObjectReference{{Name: PullSecretName(r.u.App)}}
	}
	// What pods mount is named by release: a rolling update's old pods
	// keep theirs until they are gone, and a rollback finds it again.
	base := r.u.App + "-" + strings.ToLower(r.w.Release)
	if len(data.config) > 0 || len(data.binary) > 0 {
		cm := &corev1.ConfigMap{ObjectMeta: r.meta(base + "-files"), Data: data.config, BinaryData: data.binary}
		cm.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
		out = append(out, toUnstructured(cm))
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "files", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm.Name}, Items: data.configItems},
		}})
	}
	if len(data.secret) > 0 {
		s := &corev1.Secret{ObjectMeta: r.meta(base + "-secrets"), Type: corev1.SecretTypeOpaque, Data: data.secret}
		s.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		out = append(out, toUnstructured(s))
		if len(data.secretItems) > 0 {
			pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "secret-files", VolumeSource: corev1.VolumeSource{
				Secret: &corev1.SecretVolumeSource{SecretName: s.Name, Items: data.secretItems},
			}})
		}
		data.fixSecretRefs(pod.Containers, s.Name)
	}
	podLabels := r.labels()
	podLabels[LabelDeployment] = r.name()
	podMeta := metav1.ObjectMeta{Labels: podLabels, Annotations: map[string]string{AnnotationArtifact: r.w.Artifact}}
	if r.u.Revision != "" {
		podMeta.Annotations[AnnotationRevision] = r.u.Revision
	}
	d := &appsv1.Deployment{
		ObjectMeta: r.meta(r.name()),
		Spec: appsv1.DeploymentSpec{
			Selector:                &metav1.LabelSelector{MatchLabels: map[string]string{LabelApp: r.u.App, LabelEnv: r.u.Env, LabelDeployment: r.name()}},
			Template:                corev1.PodTemplateSpec{ObjectMeta: podMeta, Spec: pod},
			Strategy:                r.strategy(),
			ProgressDeadlineSeconds: new(int32(r.opts.ProgressDeadline / time.Second)),
			RevisionHistoryLimit:    new(int32(3)),
		},
	}
	d.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("Deployment"))
	lo, hi, fixed := r.replicas()
	if fixed {
		// Without an autoscaler socle owns the count; with one, it leaves
		// the field out of its apply so that the autoscaler owns it and
		// the two never fight over it (the driver still starts the
		// Deployment at the autoscaler's minimum: see applyObject).
		d.Spec.Replicas = new(int32(lo))
	}
	out = append(out, toUnstructured(d))
	if !fixed {
		out = append(out, toUnstructured(r.autoscaler(lo, hi)))
	}
	return out, nil
}

// PullSecretName is the name of the Secret with which an app's pods pull
// its images from socle's registry.
func PullSecretName(app string) string { return app + "-registry-pull" }

// runsBuild reports whether a workload runs socle's build (image "."),
// which the cluster pulls from socle's registry.
func runsBuild(w runtime.Workload) bool {
	if w.Unit == nil {
		return false
	}
	for _, c := range w.Unit.Containers {
		if c.Image == "." {
			return true
		}
	}
	return false
}

// pullSecret renders the unit's image pull Secret, shared by its releases,
// when one of them runs socle's build and there is a token; nil otherwise.
// socle reads the password only; the user name, pull-<app>, is for people
// who read the Secret (the token's own user, pull:<app>, has a colon, which
// Basic authentication cannot carry in a user name).
func pullSecret(spec runtime.UnitSpec, opts RenderOptions) (*unstructured.Unstructured, error) {
	if opts.PullToken == "" || !slices.ContainsFunc(spec.Workloads, runsBuild) {
		return nil, nil
	}
	host := strings.TrimSuffix(opts.Registry, "/")
	if host == "" {
		return nil, errors.New("a pull token but no registry to pull from")
	}
	user, token := "pull-"+spec.App, opts.PullToken
	if opts.Redact {
		token = "REDACTED"
	}
	type cred struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Auth     string `json:"auth"`
	}
	cfg, err := json.Marshal(map[string]map[string]cred{"auths": {host: {user, token, base64.StdEncoding.EncodeToString([]byte(user + ":" + token))}}})
	if err != nil {
		return nil, err
	}
	first := renderer{spec: &spec, w: &spec.Workloads[0], u: spec.Workloads[0].Unit, opts: &opts}
	s := &corev1.Secret{ObjectMeta: first.meta(PullSecretName(spec.App)), Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg}}
	s.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return toUnstructured(s), nil
}

// replicas returns the bounds of the workload, and whether they are one
// fixed count (no autoscaler).
func (r *renderer) replicas() (lo, hi int, fixed bool) {
	if r.w.Replicas > 0 {
		return r.w.Replicas, r.w.Replicas, true
	}
	lo, hi = r.u.Replicas.Min, max(r.u.Replicas.Max, r.u.Replicas.Min)
	return lo, hi, hi == lo || lo == 0
}

func (r *renderer) strategy() appsv1.DeploymentStrategy {
	surge, unavailable := 1, 0
	if p := r.u.Rollout.MaxSurge; p != nil {
		surge = *p
	}
	if p := r.u.Rollout.MaxUnavailable; p != nil {
		unavailable = *p
	}
	if surge == 0 && unavailable == 0 {
		surge = 1 // Kubernetes refuses both zero
	}
	s, u := intstr.FromInt32(int32(surge)), intstr.FromInt32(int32(unavailable))
	return appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}}
}

func (r *renderer) autoscaler(lo, hi int) *autoscalingv2.HorizontalPodAutoscaler {
	h := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: r.meta(r.name()),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: r.name()},
			MinReplicas:    new(int32(lo)),
			MaxReplicas:    int32(hi),
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: new(int32(80))},
				},
			}},
		},
	}
	h.SetGroupVersionKind(autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"))
	return h
}

// shared renders the Service (when the workload has ports), with the
// HTTPRoute of a Gateway when there is one, and the PodDisruptionBudget.
func (r *renderer) shared() ([]Object, error) {
	var out []Object
	if r.u.Service != nil && len(r.u.Service.Ports) > 0 {
		serve := r.spec.Serve
		weighted := r.opts.Gateway != nil && r.spec.Weight > 0 && len(r.spec.Keep) > 0
		if weighted {
			// The unit's service keeps the serving release; the canary
			// gets a service of its own, and the route splits between them.
			serve = r.spec.Keep[0]
		}
		out = append(out, Object{r.service(r.u.App, serve), ""})
		if r.opts.Gateway != nil {
			backends := []any{r.backend(r.u.App, 100)}
			if weighted {
				canary := r.u.App + "-" + strings.ToLower(r.w.Release)
				out = append(out, Object{r.service(canary, r.w.Release), r.w.Release})
				backends = []any{r.backend(canary, r.spec.Weight), r.backend(r.u.App, 100-r.spec.Weight)}
			}
			out = append(out, Object{r.route(backends), ""})
		}
	}
	// One pod at a time may be evicted (a node drain): never all of a
	// unit's pods at once, and never none, which would block the drain.
	one := intstr.FromInt32(1)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: r.meta(r.u.App),
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: r.selector()}},
	}
	pdb.SetGroupVersionKind(policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"))
	return append(out, Object{toUnstructured(pdb), ""}), nil
}

// service renders a Service of the unit's ports selecting release serve's
// pods, or every release's when serve is empty.
func (r *renderer) service(name, serve string) *unstructured.Unstructured {
	sel := r.selector()
	if serve != "" {
		sel[LabelRelease] = serve
	}
	svc := &corev1.Service{ObjectMeta: r.meta(name), Spec: corev1.ServiceSpec{Selector: sel}}
	for _, pname := range slices.Sorted(maps.Keys(r.u.Service.Ports)) {
		p := r.u.Service.Ports[pname]
		target := p.Port
		if p.TargetPort != nil {
			target = *p.TargetPort
		}
		proto := corev1.ProtocolTCP
		if p.Protocol != nil && *p.Protocol == types.ServicePortProtocolUDP {
			proto = corev1.ProtocolUDP
		}
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: pname, Port: int32(p.Port), TargetPort: intstr.FromInt32(int32(target)), Protocol: proto})
	}
	svc.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Service"))
	return toUnstructured(svc)
}

// backend is a route's reference to a service's primary port.
func (r *renderer) backend(service string, weight int) any {
	port := r.u.Service.Ports[spec.PrimaryPort(slices.Collect(maps.Keys(r.u.Service.Ports)))].Port
	return map[string]any{"name": service, "port": int64(port), "weight": int64(weight)}
}

// route renders the unit's HTTPRoute: <app>.<domain> on the Gateway, to
// backends. The Gateway API has no Go types in client-go, so it is written
// as the map the API server reads.
func (r *renderer) route(backends []any) *unstructured.Unstructured {
	gw := r.opts.Gateway
	labels := map[string]any{}
	for k, v := range r.labels() {
		labels[k] = v
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "HTTPRoute",
		"metadata":   map[string]any{"name": r.u.App, "namespace": r.opts.Namespace, "labels": labels},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{
				"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gw.Name, "namespace": cmp.Or(gw.Namespace, r.opts.Namespace),
			}},
			"hostnames": []any{r.u.App + "." + gw.Domain},
			"rules":     []any{map[string]any{"backendRefs": backends}},
		},
	}}
}

// podData collects what a release's containers mount and read from its
// ConfigMap and Secret. Variables that socle.yaml names secret, or that read
// a resource's credentials, are read from the Secret, never written in the
// Deployment.
type podData struct {
	config      map[string]string
	binary      map[string][]byte
	secret      map[string][]byte
	configItems []corev1.KeyToPath
	secretItems []corev1.KeyToPath
	// secretRead is set by the substitution when a placeholder reads a
	// credential.
	secretRead bool
}

// secretRefName is replaced by the Secret's name once it is known.
const secretRefName = "\x00secret"

func (p *podData) fixSecretRefs(cs []corev1.Container, name string) {
	for i := range cs {
		for j := range cs[i].Env {
			if ref := cs[i].Env[j].ValueFrom; ref != nil && ref.SecretKeyRef != nil && ref.SecretKeyRef.Name == secretRefName {
				ref.SecretKeyRef.Name = name
			}
		}
	}
}

// substitution resolves Score placeholders: ${metadata.…} from the
// workload's metadata, ${resources.…} from the outputs of its resources,
// reached at <app>-<resource> in the namespace (a Service the platform
// provides; socle provisions nothing). Reading a credential marks what is
// being resolved as secret.
func (r *renderer) substitution(data *podData) func(string) (string, error) {
	meta := map[string]any(r.u.Metadata)
	if meta == nil {
		meta = map[string]any{"name": r.u.App}
	}
	// Made-up outputs: socle provisions no resource for Kubernetes
	// environments yet (runtime.ResourcePorts says why).
	outputs := runtime.ResourceOutputs(r.u, r.opts.Secret, func(res string) string { return r.u.App + "-" + res })
	for name, lookup := range outputs {
		outputs[name] = func(keys ...string) (any, error) {
			if len(keys) == 1 && runtime.SecretOutputs[keys[0]] {
				data.secretRead = true
			}
			return lookup(keys...)
		}
	}
	score := framework.BuildSubstitutionFunction(meta, outputs)
	ports := r.portPlaceholders()
	return func(ref string) (string, error) {
		if ref == "socle.port" || strings.HasPrefix(ref, "socle.port.") {
			if v, ok := ports["${"+ref+"}"]; ok {
				return v, nil
			}
			return "", fmt.Errorf("${%s}: the workload's service has no such port", ref)
		}
		return score(ref)
	}
}

// portPlaceholders gives socle's port placeholders (runtime.PortPlaceholder)
// their values on Kubernetes: the container port of the service's ports,
// the first in name order for ${socle.port}, as the other runtimes' PORT.
func (r *renderer) portPlaceholders() map[string]string {
	out := map[string]string{}
	if r.u.Service == nil {
		return out
	}
	for i, name := range slices.Sorted(maps.Keys(r.u.Service.Ports)) {
		p := r.u.Service.Ports[name]
		port := p.Port
		if p.TargetPort != nil {
			port = *p.TargetPort
		}
		if i == 0 {
			out[runtime.PortPlaceholder] = strconv.Itoa(port)
		}
		out[runtime.PortPlaceholderOf(name)] = strconv.Itoa(port)
	}
	return out
}

// expandPorts replaces socle's port placeholders in a command line, where
// Score's are not resolved.
func (r *renderer) expandPorts(list []string) []string {
	ports := r.portPlaceholders()
	if list == nil || len(ports) == 0 {
		return list
	}
	var pairs []string
	for k, v := range ports {
		pairs = append(pairs, k, v)
	}
	rep := strings.NewReplacer(pairs...)
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = rep.Replace(v)
	}
	return out
}

// resolve substitutes s, and reports whether it read a credential.
func (r *renderer) resolve(s string, data *podData, subst func(string) (string, error)) (string, bool, error) {
	data.secretRead = false
	v, err := framework.SubstituteString(s, subst)
	return v, data.secretRead, err
}

func (r *renderer) container(name string, c types.Container, first bool, data *podData, subst func(string) (string, error)) (corev1.Container, error) {
	out := corev1.Container{Name: name, Image: r.image(name, c), Command: r.expandPorts(c.Command), Args: r.expandPorts(c.Args), ImagePullPolicy: corev1.PullIfNotPresent}
	for _, k := range slices.Sorted(maps.Keys(c.Variables)) {
		if _, ref, _ := spec.ParseSecretRef(c.Variables[k]); ref && slices.Contains(r.u.Secrets, k) {
			return out, fmt.Errorf("variables.%s: references to secret managers (ref+…) are resolved by the local and container runtimes, not on kubernetes yet", k)
		}
		v, secret, err := r.resolve(c.Variables[k], data, subst)
		if err != nil {
			return out, fmt.Errorf("variables.%s: %w", k, err)
		}
		if !secret && !slices.Contains(r.u.Secrets, k) {
			out.Env = append(out.Env, corev1.EnvVar{Name: k, Value: v})
			continue
		}
		key := name + "." + k
		data.putSecret(key, r.redact(v))
		out.Env = append(out.Env, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secretRefName}, Key: key},
		}})
	}
	for i, target := range slices.Sorted(maps.Keys(c.Files)) {
		if err := r.file(&out, name, i, target, c.Files[target], data, subst); err != nil {
			return out, fmt.Errorf("files.%s: %w", target, err)
		}
	}
	if len(c.Volumes) > 0 {
		return out, errors.New("volumes: not supported on kubernetes yet")
	}
	if first && r.u.Service != nil {
		for _, pname := range slices.Sorted(maps.Keys(r.u.Service.Ports)) {
			p := r.u.Service.Ports[pname]
			port := p.Port
			if p.TargetPort != nil {
				port = *p.TargetPort
			}
			if slices.ContainsFunc(out.Ports, func(cp corev1.ContainerPort) bool { return int(cp.ContainerPort) == port }) {
				continue
			}
			cp := corev1.ContainerPort{ContainerPort: int32(port), Protocol: corev1.ProtocolTCP}
			if p.Protocol != nil && *p.Protocol == types.ServicePortProtocolUDP {
				cp.Protocol = corev1.ProtocolUDP
			}
			if len(pname) <= 15 { // an IANA service name
				cp.Name = pname
			}
			out.Ports = append(out.Ports, cp)
		}
	}
	var err error
	if out.ReadinessProbe, err = probe(c.ReadinessProbe); err != nil {
		return out, fmt.Errorf("readinessProbe: %w", err)
	}
	if out.LivenessProbe, err = probe(c.LivenessProbe); err != nil {
		return out, fmt.Errorf("livenessProbe: %w", err)
	}
	if c.Resources != nil {
		if out.Resources.Limits, err = quantities(c.Resources.Limits); err != nil {
			return out, fmt.Errorf("resources.limits: %w", err)
		}
		if out.Resources.Requests, err = quantities(c.Resources.Requests); err != nil {
			return out, fmt.Errorf("resources.requests: %w", err)
		}
	}
	return out, nil
}

func (r *renderer) redact(v string) string {
	if r.opts.Redact {
		return "REDACTED"
	}
	return v
}

func (p *podData) putSecret(key, v string) {
	if p.secret == nil {
		p.secret = map[string][]byte{}
	}
	p.secret[key] = []byte(v)
}

// file mounts one Score file from the release's ConfigMap, or its Secret
// when its content reads a credential.
func (r *renderer) file(c *corev1.Container, cname string, i int, target string, f types.ContainerFile, data *podData, subst func(string) (string, error)) error {
	key := cname + "." + strconv.Itoa(i)
	var mode *int32
	if f.Mode != nil {
		m, err := strconv.ParseInt(*f.Mode, 8, 32)
		if err != nil || m < 0 || m > 0o777 {
			return fmt.Errorf("mode %q is not an octal file mode", *f.Mode)
		}
		mode = new(int32(m))
	}
	item := corev1.KeyToPath{Key: key, Path: key, Mode: mode}
	volume := "files"
	switch {
	case f.BinaryContent != nil:
		b, err := base64.StdEncoding.DecodeString(*f.BinaryContent)
		if err != nil {
			return fmt.Errorf("binaryContent: %w", err)
		}
		if data.binary == nil {
			data.binary = map[string][]byte{}
		}
		data.binary[key] = b
		data.configItems = append(data.configItems, item)
	case f.Content != nil:
		v, secret := *f.Content, false
		if f.NoExpand == nil || !*f.NoExpand {
			var err error
			if v, secret, err = r.resolve(v, data, subst); err != nil {
				return fmt.Errorf("content: %w", err)
			}
		}
		if secret {
			data.putSecret(key, r.redact(v))
			data.secretItems = append(data.secretItems, item)
			volume = "secret-files"
			break
		}
		if data.config == nil {
			data.config = map[string]string{}
		}
		data.config[key] = v
		data.configItems = append(data.configItems, item)
	default:
		return errors.New("source: files read from the repository are not supported on kubernetes yet; inline them with content")
	}
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: volume, MountPath: target, SubPath: key, ReadOnly: true})
	return nil
}

// image names the image a container runs: socle's build in the registry
// the cluster pulls from, or the container's own image, each pinned to the
// digest the release gives that container.
func (r *renderer) image(name string, c types.Container) string {
	digest, pinned := r.w.Images[name]
	if r.w.Images == nil {
		built := false
		for _, o := range r.u.Containers {
			built = built || o.Image == "."
		}
		digest = r.w.Artifact
		pinned = digest != "" && (c.Image == "." || (!built && !strings.Contains(c.Image, "@")))
	}
	switch {
	case !pinned || digest == "":
		return c.Image
	case c.Image == ".":
		return strings.TrimSuffix(r.opts.Registry, "/") + "/apps/" + r.u.App + "@" + digest
	}
	return repository(c.Image) + "@" + digest
}

// repository strips an image reference's tag and digest.
func repository(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	slash := strings.LastIndex(ref, "/")
	if colon := strings.LastIndex(ref, ":"); colon > slash {
		return ref[:colon]
	}
	return ref
}

func probe(p *types.ContainerProbe) (*corev1.Probe, error) {
	if p == nil {
		return nil, nil
	}
	out := &corev1.Probe{PeriodSeconds: 5}
	switch {
	case p.Exec != nil:
		out.Exec = &corev1.ExecAction{Command: p.Exec.Command}
	case p.HttpGet != nil:
		g := p.HttpGet
		h := &corev1.HTTPGetAction{Path: g.Path, Port: intstr.FromInt32(int32(g.Port))}
		if g.Host != nil {
			h.Host = *g.Host
		}
		if g.Scheme != nil {
			h.Scheme = corev1.URIScheme(*g.Scheme)
		}
		for _, hd := range g.HttpHeaders {
			h.HTTPHeaders = append(h.HTTPHeaders, corev1.HTTPHeader{Name: hd.Name, Value: hd.Value})
		}
		out.HTTPGet = h
	default:
		return nil, errors.New("neither exec nor httpGet")
	}
	return out, nil
}

func quantities(l *types.ResourcesLimits) (corev1.ResourceList, error) {
	if l == nil {
		return nil, nil
	}
	out := corev1.ResourceList{}
	for name, v := range map[corev1.ResourceName]*string{corev1.ResourceCPU: l.Cpu, corev1.ResourceMemory: l.Memory} {
		if v == nil {
			continue
		}
		q, err := resource.ParseQuantity(*v)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a quantity", name, *v)
		}
		out[name] = q
	}
	return out, nil
}

// toUnstructured turns a typed object into the map that is applied, without
// the empty status and creation time that typed objects marshal.
func toUnstructured(obj k8sruntime.Object) *unstructured.Unstructured {
	m, err := k8sruntime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		panic(fmt.Sprintf("converting a %T: %v", obj, err)) // only for types this file builds
	}
	delete(m, "status")
	dropCreationTimestamps(m)
	return &unstructured.Unstructured{Object: m}
}

func dropCreationTimestamps(v any) {
	switch x := v.(type) {
	case map[string]any:
		if ts, ok := x["creationTimestamp"]; ok && ts == nil {
			delete(x, "creationTimestamp")
		}
		for _, e := range x {
			dropCreationTimestamps(e)
		}
	case []any:
		for _, e := range x {
			dropCreationTimestamps(e)
		}
	}
}

// Hash is a content hash of rendered objects: the inventory records it, so
// that an unchanged desired state is recognised without asking the API
// server anything.
func Hash(objs []Object) string {
	h := sha256.New()
	for _, o := range objs {
		b, _ := json.Marshal(o.Object) // maps marshal in key order
		h.Write(b)
		h.Write([]byte{0})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// YAML writes objects as a multi-document YAML stream, as kubectl reads it.
func YAML(objs []Object) ([]byte, error) {
	var b strings.Builder
	for i, o := range objs {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("marshalling %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return []byte(b.String()), nil
}
