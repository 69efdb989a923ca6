package k8s_test

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stuffmart/stuffmart/dev/stack"
)

// clusterDifferences are the fields of the apps' configurations (as their
// LoadConfig returns them; "Service." is the part every service shares) that
// are meant to differ between the cluster (the k8s/dev overlay that `skaffold
// dev` deploys, and k8s/prod) and `make dev`, with the reason. Every other field must be equal: a setting
// that changes behaviour (a body limit, a lifetime, a hold, a bound) behaves
// the same in both. Secrets are not listed: their sources differ (make dev
// generates JWT_KEY, SESSION_KEY and STRIPE_WEBHOOK_SECRET into DATA_DIR/secrets.json, the cluster
// reads Secrets), so the test gives both the same stand-ins, and each must
// arrive in the same field.
var clusterDifferences = map[string]map[string]string{
	"": { // every service
		"Service.HTTPAddr":       "port: make dev gives each app a free port on 127.0.0.1; a pod listens on :3000",
		"Service.MongoURI":       "make dev: one embedded FerretDB on loopback, no credentials; the cluster: the service's own MongoDB and user",
		"Service.NATS.URL":       "make dev: the embedded server on loopback, no credentials; the cluster: the nats Service with its password",
		"Service.DebugAddr":      "make dev serves the whole process's profiles itself (DEBUG_ADDR of make dev); each pod on its loopback",
		"Service.TrustedProxies": "make dev: loopback (the gateway and the storefront run in its process); the cluster: the private ranges of the ingress controller's and the storefront's pods",
	},
	"payments": {
		"PublicURL": "make dev: return URLs of any origin (the browser's host varies); the cluster: the storefront's, https://stuffmart.dev",
	},
	"client": {
		"HTTPAddr":       "port, as for the services",
		"AuthURL":        "service URLs: make dev's gateway (API_URL); the cluster: each Service",
		"StuffURL":       "service URLs, as AuthURL",
		"OrdersURL":      "service URLs, as AuthURL",
		"PaymentsURL":    "service URLs, as AuthURL",
		"PublicURL":      "make dev: each request's own host; the cluster: its ingress host, https://stuffmart.dev",
		"AssetsDir":      "make dev: the repository's assets/; the image: /assets",
		"TrustedProxies": "make dev: loopback (its gateway runs in the process); the cluster: the private ranges of the ingress controller's pods",
		"DebugAddr":      "make dev serves the whole process's profiles itself; each pod on its loopback",
	},
}

// withStripeKeyDifferences are more intended differences, by overlay, when a
// Stripe key is set on both sides.
var withStripeKeyDifferences = map[string]map[string]map[string]string{
	"dev": {
		"client": {
			"PaymentsOffline": "make dev with a key asks for a payment method id; the dev overlay keeps offering Stripe's test cards, which a test key accepts",
		},
	},
}

// TestClusterConfigMatchesMakeDev compares, for every app, the configuration
// its own LoadConfig makes of its Deployment in each overlay with the one it
// makes of the environment `make dev` gives it (stack.ServiceEnv, with make
// dev's defaults), field by field: they must be equal except for the fields
// clusterDifferences lists. For k8s/dev without a Stripe key on both sides
// and with one; for k8s/prod, which requires the key, with one.
func TestClusterConfigMatchesMakeDev(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		compareWithMakeDev(t, m)
	})
}

func compareWithMakeDev(t *testing.T, m *manifests) {
	apps := appDeployments(t, m)
	local, err := stack.LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatalf("make dev's defaults: %v", err)
	}
	var names []string
	for _, s := range local.Services {
		names = append(names, s.Name)
	}
	if got, want := slices.Sorted(slices.Values(names)), slices.Sorted(maps.Keys(apps)); !slices.Equal(got, want) {
		t.Fatalf("make dev runs %v; the cluster %v", got, want)
	}
	secrets := stack.Secrets{
		JWTKey:     secretValue("jwt-secret", "JWT_KEY"),
		SessionKey: secretValue("session-secret", "SESSION_KEY"),
	}
	endpoints := stack.Endpoints{MongoURI: "mongodb://127.0.0.1:27017", NATSURL: "nats://127.0.0.1:4222", APIURL: "http://127.0.0.1:8080"}
	stripeCases := []bool{false, true}
	if m.Name == "prod" {
		stripeCases = []bool{true}
	}
	for _, stripe := range stripeCases {
		cfg, secrets := local, secrets
		if stripe {
			cfg.StripeSecretKey = secretValue("stripe-secret", "STRIPE_SECRET_KEY")
			secrets.StripeWebhookSecret = secretValue("stripe-secret", "STRIPE_WEBHOOK_SECRET")
		}
		// Without a key the webhook secret only signs the offline stand-in's
		// events for its own process: make dev generates one, a cluster
		// without stripe-secret leaves it to each pod. Both stand in as "".
		for name, d := range apps {
			t.Run(fmt.Sprintf("%s/stripe=%v", name, stripe), func(t *testing.T) {
				localEnv := stack.ServiceEnv(cfg, secrets, endpoints, name, "127.0.0.1:41000")
				localCfg, err := loaders[name](func(k string) string { return localEnv[k] })
				if err != nil {
					t.Fatalf("LoadConfig with make dev's environment: %v", err)
				}
				clusterEnv, err := resolveEnv(m, d.Spec.Template.Spec.Containers[0], stripe)
				if err != nil {
					t.Fatal(err)
				}
				clusterCfg, err := loaders[name](func(k string) string { return clusterEnv[k] })
				if err != nil {
					t.Fatalf("LoadConfig with the Deployment's environment: %v", err)
				}
				intended := map[string]string{}
				for _, app := range []string{"", name} {
					maps.Copy(intended, clusterDifferences[app])
					if stripe {
						maps.Copy(intended, withStripeKeyDifferences[m.Name][app])
					}
				}
				got, want := flatten(clusterCfg), flatten(localCfg)
				if len(got) == 0 || !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
					t.Fatalf("fields %v and %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
				}
				for _, f := range slices.Sorted(maps.Keys(want)) {
					_, listed := intended[f]
					switch same := reflect.DeepEqual(got[f], want[f]); {
					case !same && !listed:
						t.Errorf("%s: cluster %#v, make dev %#v", f, got[f], want[f])
					case same && listed:
						t.Errorf("%s is listed as an intended difference but is %#v on both sides", f, got[f])
					}
					delete(intended, f)
				}
				for f := range intended {
					if name != "client" && strings.HasPrefix(f, "Service.") || name == "client" && !strings.HasPrefix(f, "Service.") {
						t.Errorf("intended difference %s: no such field", f)
					}
				}
			})
		}
	}
}

// flatten returns the exported fields of a configuration struct by path
// ("Service.NATS.URL"), leaving out functions (clocks that tests set).
func flatten(cfg any) map[string]any {
	out := map[string]any{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		if v.Kind() == reflect.Struct {
			for i := range v.NumField() {
				f := v.Type().Field(i)
				if !f.IsExported() || f.Type.Kind() == reflect.Func {
					continue
				}
				walk(prefix+f.Name+".", v.Field(i))
			}
			return
		}
		out[strings.TrimSuffix(prefix, ".")] = v.Interface()
	}
	walk("", reflect.ValueOf(cfg))
	return out
}
