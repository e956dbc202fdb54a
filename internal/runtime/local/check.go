package local

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/supervise"
)

// check validates spec, with its defaults, for this driver: beyond
// ReplicaSpec.Validate, the image directory must exist and the entrypoint
// and exec probes must be runnable on this host.
func check(spec runtime.ReplicaSpec, inSandbox bool) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	var errs []error
	if spec.Root == "" {
		errs = append(errs, errors.New("root: the local runtime runs an unpacked image and needs its directory"))
	} else if fi, err := os.Stat(spec.Root); err != nil || !fi.IsDir() {
		errs = append(errs, fmt.Errorf("root: %s is not a directory", spec.Root))
	}
	if len(errs) == 0 {
		if fi, err := os.Stat(inRoot(spec.Root, spec.WorkingDir)); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("workingDir: %s is not a directory of the image", spec.WorkingDir))
		}
		if path, err := resolve(spec, spec.Command[0], inSandbox); err != nil {
			errs = append(errs, fmt.Errorf("command: %w", err))
		} else if err := runnable(path); err != nil {
			errs = append(errs, fmt.Errorf("command: %w", err))
		}
		for i, p := range []*runtime.Probe{spec.Readiness, spec.Liveness} {
			if p != nil && p.Exec != nil {
				if _, err := resolve(spec, p.Exec.Command[0], inSandbox); err != nil {
					errs = append(errs, fmt.Errorf("%s: exec: %w", [...]string{"readiness", "liveness"}[i], err))
				}
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: replica %s: %w", runtime.ErrInvalid, spec.Ref, errors.Join(errs...))
}

// hostMachine is the ELF machine of this host's processor, when known.
var hostMachine = map[string]elf.Machine{
	"386":     elf.EM_386,
	"amd64":   elf.EM_X86_64,
	"arm":     elf.EM_ARM,
	"arm64":   elf.EM_AARCH64,
	"loong64": elf.EM_LOONGARCH,
	"ppc64le": elf.EM_PPC64,
	"riscv64": elf.EM_RISCV,
	"s390x":   elf.EM_S390,
}[goruntime.GOARCH]

// runnable tells why the file at path cannot run on this host, if it cannot:
// a script runs (its interpreter is the host's), an ELF executable must be
// for this processor and, if dynamically linked, for a loader this host has.
func runnable(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		head := make([]byte, 2)
		if h, err := os.Open(path); err == nil {
			_, _ = io.ReadFull(h, head)
			h.Close()
		}
		if string(head) == "#!" {
			return nil
		}
		return fmt.Errorf("%s is neither an ELF executable nor a script: the local runtime runs only executables of this host", path)
	}
	defer f.Close()
	if hostMachine != elf.EM_NONE && f.Machine != hostMachine {
		return fmt.Errorf("%s is built for %s, this host is %s/%s: run it with a container runtime", path, f.Machine, goruntime.GOOS, goruntime.GOARCH)
	}
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(prog.Open())
		if err != nil {
			return fmt.Errorf("%s: reading its loader: %w", path, err)
		}
		if loader := strings.TrimRight(string(b), "\x00"); !exists(loader) {
			return fmt.Errorf("%s is linked dynamically against %s, which this host lacks: build it static (CGO_ENABLED=0) or use a container runtime", path, loader)
		}
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// environ returns the environment of the replica's processes: the spec's,
// PATH if it has none, PORT and PORT_<NAME>, and the marker that finds the
// process again.
func environ(spec runtime.ReplicaSpec, ports []runtime.PortBinding, dir string) []string {
	env := maps.Clone(spec.Variables)
	if env == nil {
		env = map[string]string{}
	}
	if env["PATH"] == "" {
		env["PATH"] = defaultPath
	}
	for i, b := range ports {
		port := strconv.Itoa(supervise.PortOf(b.Address))
		if i == 0 {
			env["PORT"] = port
		}
		env[supervise.PortVar(b.Name)] = port
	}
	env[markerVar] = dir
	list := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		list = append(list, k+"="+env[k])
	}
	return list
}
