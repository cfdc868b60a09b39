// Command gostandin stands in for the Go nfs-subdir-external-provisioner when its module
// cannot be fetched: the same controller library (sig-storage-lib-external-provisioner v6),
// the same out-of-cluster client setup (client-go's default 5 QPS / burst 10), the same
// environment variables and the same hard-coded mount point. Only the backend below is ours:
// mkdir + chmod on provision, archive rename on delete, which is all the original does for
// a class without pathPattern.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v6/controller"
)

const mountRoot = "/persistentvolumes"

type backend struct {
	client kubernetes.Interface
	server string
	base   string
}

func (b *backend) Provision(
	ctx context.Context, opts controller.ProvisionOptions,
) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	if opts.PVC.Spec.Selector != nil {
		return nil, controller.ProvisioningFinished, fmt.Errorf("claim Selector is not supported")
	}
	dir := opts.PVC.Namespace + "-" + opts.PVC.Name + "-" + opts.PVName
	local := filepath.Join(mountRoot, dir)
	if err := os.MkdirAll(local, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, fmt.Errorf("creating %s: %w", local, err)
	}
	_ = os.Chmod(local, 0o777)
	storage := opts.PVC.Spec.Resources.Requests[v1.ResourceStorage]
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: opts.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: *opts.StorageClass.ReclaimPolicy,
			AccessModes:                   opts.PVC.Spec.AccessModes,
			MountOptions:                  opts.StorageClass.MountOptions,
			Capacity:                      v1.ResourceList{v1.ResourceStorage: storage},
			PersistentVolumeSource: v1.PersistentVolumeSource{
				NFS: &v1.NFSVolumeSource{Server: b.server, Path: filepath.Join(b.base, dir)},
			},
		},
	}, controller.ProvisioningFinished, nil
}

func (b *backend) Delete(ctx context.Context, pv *v1.PersistentVolume) error {
	name := filepath.Base(pv.Spec.NFS.Path)
	local := filepath.Join(mountRoot, name)
	if _, err := os.Stat(local); os.IsNotExist(err) {
		return nil
	}
	// Like the original, the class is read from the API server on every delete.
	class, err := b.client.StorageV1().StorageClasses().Get(ctx, pv.Spec.StorageClassName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if value, ok := class.Parameters["archiveOnDelete"]; ok {
		archive, err := strconv.ParseBool(value)
		if err != nil {
			return err
		}
		if !archive {
			return os.RemoveAll(local)
		}
	}
	return os.Rename(local, filepath.Join(mountRoot, "archived-"+name))
}

func required(name string) string {
	value := os.Getenv(name)
	if value == "" {
		klog.Fatalf("%s is not set", name)
	}
	return value
}

func main() {
	klog.InitFlags(nil)
	server, base, name := required("NFS_SERVER"), required("NFS_PATH"), required("PROVISIONER_NAME")
	var config *rest.Config
	var err error
	if kubeconfig := os.Getenv("KUBECONFIG"); kubeconfig != "" {
		config, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		config, err = rest.InClusterConfig()
	}
	if err != nil {
		klog.Fatalf("client configuration: %v", err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		klog.Fatalf("client: %v", err)
	}
	version, err := client.Discovery().ServerVersion()
	if err != nil {
		klog.Fatalf("server version: %v", err)
	}
	election := true
	if value := os.Getenv("ENABLE_LEADER_ELECTION"); value != "" {
		if election, err = strconv.ParseBool(value); err != nil {
			klog.Fatalf("ENABLE_LEADER_ELECTION: %v", err)
		}
	}
	controller.NewProvisionController(
		client, name, &backend{client: client, server: server, base: base},
		version.GitVersion, controller.LeaderElection(election),
	).Run(context.Background())
}
