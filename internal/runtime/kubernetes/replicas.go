package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/socle-dev/socle/internal/runtime"
)

// Replicas runs single replicas as bare pods of one namespace: the
// replica-level runtime.Driver on Kubernetes. socle's units do not use it
// (the Driver's unit path gives them Deployments, which the cluster keeps);
// it exists so that the conformance suite every driver passes says, test by
// test, what holds on Kubernetes as on the local runtime, and what differs
// (runtime.Capabilities).
type Replicas struct {
	d      *Driver
	ns     string
	closed atomic.Bool
}

var _ runtime.Driver = (*Replicas)(nil)

// Replicas returns the replica-level driver of namespace ns.
func (d *Driver) Replicas(ns string) *Replicas { return &Replicas{d: d, ns: ns} }

const labelIndex = "socle.dev/index"

// Name is "kubernetes".
func (r *Replicas) Name() string { return r.d.Name() }

// Capabilities of bare pods: the kubelet runs probes, exec ones too, and
// keeps pods when socle goes; they run images, not host executables.
func (r *Replicas) Capabilities() runtime.Capabilities {
	c := r.d.Capabilities()
	c.Units = false
	return c
}

func (r *Replicas) check() error {
	if r.closed.Load() {
		return runtime.ErrClosed
	}
	return nil
}

func podName(ref runtime.Ref) string {
	return strings.ToLower(fmt.Sprintf("%s-%s-%s-%d", ref.App, ref.Env, ref.Release, ref.Index))
}

// Start creates the replica's pod. Its restart policy is the kubelet's:
// socle's backoff settings do not apply.
func (r *Replicas) Start(ctx context.Context, spec runtime.ReplicaSpec) (runtime.Handle, error) {
	if err := r.check(); err != nil {
		return runtime.Handle{}, err
	}
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return runtime.Handle{}, err
	}
	if spec.Image == "" {
		return runtime.Handle{}, fmt.Errorf("%w: replica %s: image: kubernetes runs images; the spec names none", runtime.ErrInvalid, spec.Ref)
	}
	if err := r.d.ensureNamespace(ctx, r.ns); err != nil {
		return runtime.Handle{}, err
	}
	spec = spec.ExpandPorts(func(p runtime.Port) int { return p.Port }) // the container ports, as PORT
	c := corev1.Container{Name: "main", Image: spec.Image, Command: spec.Command, Args: spec.Args, WorkingDir: spec.WorkingDir}
	vars := maps.Clone(spec.Variables)
	if vars == nil {
		vars = map[string]string{}
	}
	for i, p := range spec.Ports {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: p.Name, ContainerPort: int32(p.Port), Protocol: corev1.ProtocolTCP})
		if i == 0 {
			vars["PORT"] = strconv.Itoa(p.Port)
		}
		vars["PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))] = strconv.Itoa(p.Port)
	}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: vars[k]})
	}
	c.ReadinessProbe = replicaProbe(spec, spec.Readiness)
	c.LivenessProbe = replicaProbe(spec, spec.Liveness)
	grace := int64(spec.GracePeriod.Round(time.Second) / time.Second)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName(spec.Ref), Namespace: r.ns, Labels: map[string]string{
			LabelApp: spec.App, LabelEnv: spec.Env, LabelRelease: spec.Release, labelIndex: strconv.Itoa(spec.Index), labelManagedBy: "socle",
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{c}, TerminationGracePeriodSeconds: &grace, RestartPolicy: corev1.RestartPolicyAlways,
			EnableServiceLinks: new(false), AutomountServiceAccountToken: new(false)},
	}
	_, err := r.d.cs.CoreV1().Pods(r.ns).Create(ctx, pod, metav1.CreateOptions{FieldManager: FieldManager})
	if apierrors.IsAlreadyExists(err) {
		return runtime.Handle{}, fmt.Errorf("%w: %s", runtime.ErrExists, spec.Ref)
	}
	if err != nil {
		return runtime.Handle{}, fmt.Errorf("creating pod %s/%s: %w", r.ns, pod.Name, err)
	}
	return r.handle(pod.Name), nil
}

func (r *Replicas) handle(name string) runtime.Handle {
	return runtime.Handle{Driver: r.Name(), ID: r.ns + "/" + name}
}

// replicaProbe turns a probe into the kubelet's, in whole seconds (at least
// one, the kubelet's least period).
func replicaProbe(spec runtime.ReplicaSpec, p *runtime.Probe) *corev1.Probe {
	if p == nil {
		return nil
	}
	secs := func(d time.Duration) int32 { return int32(max(1, (d+time.Second-1)/time.Second)) }
	out := &corev1.Probe{PeriodSeconds: secs(p.Period), TimeoutSeconds: secs(p.Timeout), FailureThreshold: int32(p.FailureThreshold),
		InitialDelaySeconds: int32(p.InitialDelay / time.Second)}
	if g := p.HTTPGet; g != nil {
		port, _ := spec.PortFor(g.Port)
		h := &corev1.HTTPGetAction{Path: g.Path, Port: intstr.FromInt32(int32(port.Port)), Host: g.Host, Scheme: corev1.URIScheme(g.Scheme)}
		for _, hd := range g.Headers {
			h.HTTPHeaders = append(h.HTTPHeaders, corev1.HTTPHeader{Name: hd.Name, Value: hd.Value})
		}
		out.HTTPGet = h
	}
	if e := p.Exec; e != nil {
		out.Exec = &corev1.ExecAction{Command: e.Command}
	}
	return out
}

// pod reads the pod a handle names in the driver's namespace.
func (r *Replicas) pod(ctx context.Context, h runtime.Handle) (*corev1.Pod, error) {
	ns, name, ok := strings.Cut(h.ID, "/")
	if !ok || ns != r.ns || h.Driver != r.Name() {
		return nil, fmt.Errorf("%w: %s", runtime.ErrNotFound, h.ID)
	}
	p, err := r.d.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", runtime.ErrNotFound, h.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("reading pod %s: %w", h.ID, err)
	}
	return p, nil
}

// Status reports the pod as a replica.
func (r *Replicas) Status(ctx context.Context, h runtime.Handle) (runtime.Status, error) {
	if err := r.check(); err != nil {
		return runtime.Status{}, err
	}
	p, err := r.pod(ctx, h)
	if err != nil {
		return runtime.Status{}, err
	}
	return r.status(p), nil
}

func (r *Replicas) status(p *corev1.Pod) runtime.Status {
	idx, _ := strconv.Atoi(p.Labels[labelIndex])
	st := runtime.Status{
		Handle: r.handle(p.Name),
		Ref:    runtime.Ref{App: p.Labels[LabelApp], Env: p.Labels[LabelEnv], Release: p.Labels[LabelRelease], Index: idx},
		State:  runtime.Starting,
	}
	if p.Status.StartTime != nil {
		st.StartedAt = p.Status.StartTime.Time
	}
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			b := runtime.PortBinding{Name: port.Name, Port: int(port.ContainerPort)}
			if p.Status.PodIP != "" {
				b.Address = fmt.Sprintf("%s:%d", p.Status.PodIP, port.ContainerPort)
			}
			st.Ports = append(st.Ports, b)
		}
	}
	for _, c := range p.Status.ContainerStatuses {
		st.Restarts += int(c.RestartCount)
		if w := c.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
			st.State = runtime.CrashLoop
		}
		if t := c.LastTerminationState.Terminated; t != nil {
			st.LastExit = &runtime.Exit{At: t.FinishedAt.Time, Code: int(t.ExitCode), Reason: strings.TrimSpace(t.Reason + " " + t.Message)}
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			st.State, st.Ready = runtime.Running, true
		}
	}
	if p.DeletionTimestamp != nil {
		st.State, st.Ready = runtime.Stopping, false
	}
	if !st.Ready {
		st.Message = podWhy(p)
		if st.Message == "" {
			st.Message = "pod " + string(p.Status.Phase) + ", not ready"
		}
	}
	return st
}

// List reports the replicas of the namespace, ordered by Ref.
func (r *Replicas) List(ctx context.Context) ([]runtime.Status, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	pods, err := r.d.cs.CoreV1().Pods(r.ns).List(ctx, metav1.ListOptions{LabelSelector: labelIndex})
	if err != nil {
		return nil, fmt.Errorf("listing pods of %s: %w", r.ns, err)
	}
	out := make([]runtime.Status, 0, len(pods.Items))
	for i := range pods.Items {
		out = append(out, r.status(&pods.Items[i]))
	}
	slices.SortFunc(out, func(a, b runtime.Status) int { return a.Ref.Compare(b.Ref) })
	return out, nil
}

// Recover adopts a pod: the kubelet never stopped supervising it.
func (r *Replicas) Recover(ctx context.Context, h runtime.Handle) error {
	if err := r.check(); err != nil {
		return err
	}
	_, err := r.pod(ctx, h)
	return err
}

// Stop deletes the pod with its grace period and returns once it is gone.
func (r *Replicas) Stop(ctx context.Context, h runtime.Handle) error {
	if err := r.check(); err != nil {
		return err
	}
	p, err := r.pod(ctx, h)
	if err != nil {
		return err
	}
	pods := r.d.cs.CoreV1().Pods(r.ns)
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + p.Name, ResourceVersion: p.ResourceVersion})
	if err != nil {
		return fmt.Errorf("watching pod %s: %w", h.ID, err)
	}
	defer w.Stop()
	err = pods.Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return fmt.Errorf("%w: %s", runtime.ErrNotFound, h.ID)
	}
	if err != nil {
		return fmt.Errorf("deleting pod %s: %w", h.ID, err)
	}
	for {
		select {
		case <-ctx.Done():
			// Killed at once, as Stop promises when ctx ends first.
			zero := int64(0)
			_ = pods.Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
			return ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				if _, err := r.pod(ctx, h); errors.Is(err, runtime.ErrNotFound) {
					return nil
				}
				return fmt.Errorf("watching pod %s: the watch ended", h.ID)
			}
			if ev.Type == watch.Deleted {
				return nil
			}
		}
	}
}

// StopAll stops every replica of the namespace, in parallel.
func (r *Replicas) StopAll(ctx context.Context) error {
	list, err := r.List(ctx)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, st := range list {
		wg.Go(func() {
			if err := r.Stop(ctx, st.Handle); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Logs streams the pod's log from the kubelet.
func (r *Replicas) Logs(ctx context.Context, h runtime.Handle, follow bool) (io.ReadCloser, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	p, err := r.pod(ctx, h)
	if err != nil {
		return nil, err
	}
	rc, err := r.d.cs.CoreV1().Pods(r.ns).GetLogs(p.Name, &corev1.PodLogOptions{Follow: follow}).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the log of pod %s: %w", h.ID, err)
	}
	return rc, nil
}

// Watch turns the namespace's pod events into replica events.
func (r *Replicas) Watch(ctx context.Context) <-chan runtime.Event {
	out := make(chan runtime.Event, 64)
	go func() {
		defer close(out)
		if r.check() != nil {
			return
		}
		w, err := r.d.cs.CoreV1().Pods(r.ns).Watch(ctx, metav1.ListOptions{LabelSelector: labelIndex})
		if err != nil {
			return
		}
		defer w.Stop()
		ready := map[string]bool{}
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					return
				}
				p, isPod := ev.Object.(*corev1.Pod)
				if !isPod {
					continue
				}
				st := r.status(p)
				var typ runtime.EventType
				switch {
				case ev.Type == watch.Added:
					typ = runtime.EventStarted
				case ev.Type == watch.Deleted:
					typ = runtime.EventStopped
				case st.Ready && !ready[p.Name]:
					typ = runtime.EventReady
				case !st.Ready && ready[p.Name]:
					typ = runtime.EventNotReady
				default:
					continue
				}
				ready[p.Name] = st.Ready
				select {
				case out <- runtime.Event{At: time.Now(), Type: typ, Status: st}:
				default: // a reader that falls behind misses events; Status is the truth
				}
			}
		}
	}()
	return out
}

// Close detaches: the pods keep running, as the cluster keeps them.
func (r *Replicas) Close() error {
	if r.closed.Swap(true) {
		return runtime.ErrClosed
	}
	return nil
}
