// The API server the tests run: Kubernetes' own apiextensions-apiserver (Debian's packaged
// sources, unmodified) behind a small main of the project's, because the stock main cannot
// serve kubectl on its own (../../../../shared/docs/real-apiserver.md):
//   - discovery is switched back on (the apiextensions config turns it off: in a cluster the
//     aggregator serves /apis, and without it kubectl finds no API groups);
//   - there is no core API here, so no core API client, no admission plugins, no
//     priority-and-fairness and no delegated (webhook) authentication or authorization, all of
//     which would wait forever for a core API that never answers;
//   - clients authenticate with certificates signed by --client-ca-file; a certificate's groups
//     (O=) must include one of --allowed-groups (default system:masters), anything else is
//     forbidden (403); /healthz, /readyz, /livez are open.
// Flags are the stock server's (--etcd-servers, --secure-port, --tls-cert-file, ...).
// Built by ../fetch-kube-tools.sh in GOPATH mode.
package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"

	"github.com/spf13/pflag"
	noopoteltrace "go.opentelemetry.io/otel/trace/noop"

	extensionsapiserver "k8s.io/apiextensions-apiserver/pkg/apiserver"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	generatedopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/client-go/kubernetes/scheme"
	netutils "k8s.io/utils/net"
)

// noServices answers every webhook service lookup: there are no Services without a core API,
// so a CRD conversion webhook that names one fails with this text instead of hanging.
type noServices struct{}

func (noServices) ResolveEndpoint(namespace, name string, port int32) (*url.URL, error) {
	return nil, fmt.Errorf("service %s/%s:%d: this test API server has no core API, so no Services", namespace, name, port)
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "nri-memshare test apiserver: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	o := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
	rec := o.RecommendedOptions
	// Nothing may reach for a core API that is not there.
	rec.CoreAPI = nil
	rec.Admission = nil
	rec.Features.EnablePriorityAndFairness = false
	rec.Authentication.RemoteKubeConfigFileOptional = true
	rec.Authentication.SkipInClusterLookup = true
	rec.Authorization.RemoteKubeConfigFileOptional = true

	fs := pflag.NewFlagSet("nri-memshare-test-apiserver", pflag.ContinueOnError)
	o.AddFlags(fs)
	fs.StringSliceVar(&rec.Authorization.AlwaysAllowGroups, "allowed-groups", rec.Authorization.AlwaysAllowGroups,
		"client certificate groups (O=) allowed to do anything; every other client is forbidden")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if rec.Authentication.ClientCert.ClientCA == "" {
		return errors.New("--client-ca-file is required: clients authenticate by certificate only")
	}
	if err := o.ServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	if err := o.Complete(); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	if err := rec.SecureServing.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{netutils.ParseIPSloppy("127.0.0.1")}); err != nil {
		return fmt.Errorf("self-signed serving certificate: %w", err)
	}

	// What options.Config() does, less the core API's Services lister it dereferences.
	cfg := genericapiserver.NewRecommendedConfig(extensionsapiserver.Codecs)
	if err := o.ServerRunOptions.ApplyTo(&cfg.Config); err != nil {
		return err
	}
	if err := rec.ApplyTo(cfg); err != nil {
		return err
	}
	if err := o.APIEnablement.ApplyTo(&cfg.Config, extensionsapiserver.DefaultAPIResourceConfigSource(), extensionsapiserver.Scheme); err != nil {
		return err
	}
	defs := openapi.GetOpenAPIDefinitionsWithoutDisabledFeatures(generatedopenapi.GetOpenAPIDefinitions)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(defs, openapinamer.NewDefinitionNamer(extensionsapiserver.Scheme))
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(defs, openapinamer.NewDefinitionNamer(extensionsapiserver.Scheme, scheme.Scheme))

	config := &extensionsapiserver.Config{
		GenericConfig: cfg,
		ExtraConfig: extensionsapiserver.ExtraConfig{
			CRDRESTOptionsGetter: options.NewCRDRESTOptionsGetter(*rec.Etcd, cfg.ResourceTransformers, cfg.StorageObjectCountTracker),
			ServiceResolver:      noServices{},
			AuthResolverWrapper:  webhook.NewDefaultAuthenticationInfoResolverWrapper(nil, nil, cfg.LoopbackClientConfig, noopoteltrace.NewTracerProvider()),
		},
	}
	completed := config.Complete()
	// Complete() turns discovery off; standalone, this server is the one that must serve /apis.
	completed.GenericConfig.EnableDiscovery = true

	server, err := completed.New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return fmt.Errorf("creating the server: %w", err)
	}
	return server.GenericAPIServer.PrepareRun().RunWithContext(genericapiserver.SetupSignalContext())
}
