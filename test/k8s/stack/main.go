// Command stack is one binary that runs as etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler or kubectl, chosen by its first
// argument or by the name it is called under (busybox style). socle's tests
// build it from Go modules because no prebuilt Kubernetes download is
// reachable from the machines they run on, and one binary links the shared
// Kubernetes packages once instead of four times.
//
//	stack etcd --data-dir=... --listen-client-urls=...
//	stack kube-apiserver --etcd-servers=...
//	stack kubectl get pods
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	_ "time/tzdata" // CronJob time zones, as the upstream commands do

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as upstream
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

const usage = "usage: stack etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubectl [flags]"

func main() {
	name, args := component(os.Args)
	switch name {
	case "etcd":
		// etcdmain reads its flags from args[1:], like os.Args.
		etcdmain.Main(append([]string{"etcd"}, args...))
	case "kube-apiserver":
		os.Exit(run(apiserver.NewAPIServerCommand(), args))
	case "kube-controller-manager":
		os.Exit(run(controllermanager.NewControllerManagerCommand(), args))
	case "kube-scheduler":
		os.Exit(run(scheduler.NewSchedulerCommand(), args))
	case "kubectl":
		os.Args = append([]string{"kubectl"}, args...)
		logs.GlogSetter(kubectl.GetLogVerbosity(os.Args)) //nolint:errcheck // as upstream kubectl
		command := kubectl.NewDefaultKubectlCommand()
		command.SetArgs(args)
		if err := cli.RunNoErrOutput(command); err != nil {
			kubectlutil.CheckErr(err)
		}
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
}

// component picks the component from the program name when the binary is
// called through a link named after it, else from the first argument.
func component(argv []string) (string, []string) {
	base := strings.TrimSuffix(filepath.Base(argv[0]), ".exe")
	switch base {
	case "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl":
		return base, argv[1:]
	}
	if len(argv) < 2 {
		return "", nil
	}
	return argv[1], argv[2:]
}

// run hands the remaining arguments to a cobra command: cobra would read
// os.Args[1:], which still holds the component name.
func run(c *cobra.Command, args []string) int {
	c.SetArgs(args)
	return cli.Run(c)
}
