package k8s_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// secretRef is a secret key a variable comes from.
type secretRef struct {
	Secret, Key string
	Optional    bool
}

// secretRefs are the secret keys each workload's containers may read, by
// variable name, and the only ones: the README tells how to create them.
// db is the name of the database the workload belongs to ("auth" for the
// auth service, auth-mongo and the init Job's auth container), "" for the
// others. JWT_KEY must be exactly jwt-secret/JWT_KEY: the name the README's
// first Kubernetes step creates.
func secretRefs(overlay, db string) map[string]secretRef {
	refs := map[string]secretRef{
		"JWT_KEY":               {"jwt-secret", "JWT_KEY", false},
		"SESSION_KEY":           {"session-secret", "SESSION_KEY", false},
		"STRIPE_SECRET_KEY":     {"stripe-secret", "STRIPE_SECRET_KEY", overlay != "prod"},
		"STRIPE_WEBHOOK_SECRET": {"stripe-secret", "STRIPE_WEBHOOK_SECRET", overlay != "prod"},
		"NATS_PASSWORD":         {"nats-secret", "NATS_PASSWORD", false},
	}
	if db != "" {
		refs["MONGO_PASSWORD"] = secretRef{db + "-mongo", "MONGO_PASSWORD", false}
		refs["MONGO_INITDB_SERVICE_PASSWORD"] = secretRef{db + "-mongo", "MONGO_PASSWORD", false}
		refs["MONGO_INITDB_ROOT_PASSWORD"] = secretRef{db + "-mongo", "MONGO_ROOT_PASSWORD", false}
		refs["MONGO_ROOT_PASSWORD"] = secretRef{db + "-mongo", "MONGO_ROOT_PASSWORD", false}
	}
	return refs
}

// services are the five services, each with its own MongoDB.
var services = []string{"auth", "stuff", "orders", "expiration", "payments"}

// databaseOf is the database a container belongs to: its workload's, or for
// a container named after a service in a workload of none (the Job that
// initiates the replica sets), that service's.
func databaseOf(w workload, c corev1.Container) string {
	name := strings.TrimSuffix(w.Name, "-mongo")
	if slices.Contains(services, name) {
		return name
	}
	if slices.Contains(services, c.Name) {
		return c.Name
	}
	return ""
}

// secretVolumes are the Secret volumes a workload may mount: the replica
// set's keyfile of its own database (k8s/prod).
func secretVolumes(db string) map[string]string {
	if db == "" {
		return nil
	}
	return map[string]string{db + "-mongo": "MONGO_KEYFILE"}
}

// TestSecretReferences: secrets come only from the documented secrets and
// keys, a database's credentials only to its own service, MongoDB and init
// Job; no secret-like variable has a literal value in a manifest; and the
// README tells how to create every secret and key.
func TestSecretReferences(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		used := map[secretRef]bool{}
		jwtUsers := 0
		for _, w := range m.Workloads {
			spec := w.Template.Spec
			for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
				db := databaseOf(w, c)
				refs := secretRefs(m.Name, db)
				for _, e := range c.Env {
					want, isSecret := refs[e.Name]
					var ref *corev1.SecretKeySelector
					if e.ValueFrom != nil {
						ref = e.ValueFrom.SecretKeyRef
					}
					switch {
					case isSecret && ref == nil:
						t.Errorf("%s: %s must come from secret %s key %s", w, e.Name, want.Secret, want.Key)
					case !isSecret && ref != nil:
						t.Errorf("%s: %s comes from secret %s key %s, which it may not read", w, e.Name, ref.Name, ref.Key)
					case !isSecret && regexp.MustCompile(`PASSWORD|SECRET|_KEY$`).MatchString(e.Name):
						t.Errorf("%s: %s looks like a secret with a literal value", w, e.Name)
					case isSecret:
						optional := ref.Optional != nil && *ref.Optional
						if ref.Name != want.Secret || ref.Key != want.Key || optional != want.Optional {
							t.Errorf("%s: %s from secret %s key %s (optional %v); want %s key %s (optional %v)",
								w, e.Name, ref.Name, ref.Key, optional, want.Secret, want.Key, want.Optional)
						}
						used[secretRef{ref.Name, ref.Key, false}] = true
						if e.Name == "JWT_KEY" {
							jwtUsers++
						}
					}
				}
			}
			for _, v := range spec.Volumes {
				if v.Secret == nil {
					continue
				}
				key, ok := secretVolumes(databaseOf(w, corev1.Container{}))[v.Secret.SecretName]
				if !ok || len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != key {
					t.Errorf("%s: volume %s mounts secret %s %v, which it may not read", w, v.Name, v.Secret.SecretName, v.Secret.Items)
					continue
				}
				used[secretRef{v.Secret.SecretName, key, false}] = true
			}
		}
		if jwtUsers < len(appDeployments(t, m)) {
			t.Errorf("JWT_KEY is set from jwt-secret in %d containers; every app needs it", jwtUsers)
		}
		// The README's Kubernetes section creates each: by name, or for the
		// databases' secrets in a loop over the services ($db-mongo).
		k8s := string(readme[strings.Index(string(readme), "## Kubernetes"):])
		for ref := range used {
			name := ref.Secret
			if db, ok := strings.CutSuffix(name, "-mongo"); ok && slices.Contains(services, db) {
				name = "$db-mongo"
				if !strings.Contains(k8s, "for db in "+strings.Join(services, " ")) {
					t.Errorf("README: no loop `for db in %s` creating the databases' secrets", strings.Join(services, " "))
				}
			}
			if !strings.Contains(k8s, "kubectl create secret generic "+name) {
				t.Errorf("README: no `kubectl create secret generic %s`", name)
			}
			if !strings.Contains(k8s, "--from-literal="+ref.Key+"=") {
				t.Errorf("README: secret %s key %s is never created (--from-literal=%s=)", ref.Secret, ref.Key, ref.Key)
			}
		}
	})
}

// mongoURI is a mongodb:// URI taken apart (several hosts are allowed, which
// net/url does not parse).
type mongoURI struct {
	User, Password string
	Hosts          []string
	Query          url.Values
}

func parseMongoURI(s string) (mongoURI, error) {
	rest, ok := strings.CutPrefix(s, "mongodb://")
	if !ok {
		return mongoURI{}, fmt.Errorf("%q is not a mongodb:// URI", s)
	}
	var u mongoURI
	if creds, after, ok := strings.Cut(rest, "@"); ok {
		user, pass, _ := strings.Cut(creds, ":")
		var err error
		if u.User, err = url.PathUnescape(user); err != nil {
			return u, err
		}
		if u.Password, err = url.PathUnescape(pass); err != nil {
			return u, err
		}
		rest = after
	}
	hosts, query, _ := strings.Cut(rest, "?")
	hosts, path, _ := strings.Cut(hosts, "/")
	if path != "" {
		return u, fmt.Errorf("%q: give the auth database as authSource, the database as MONGO_DB", s)
	}
	u.Hosts = strings.Split(hosts, ",")
	var err error
	u.Query, err = url.ParseQuery(query)
	return u, err
}

// replicaSetName is the value of mongod's --replSet among args, "" if none.
func replicaSetName(args []string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--replSet="); ok {
			return v
		}
		if a == "--replSet" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// TestMongoAuthentication: every MongoDB requires authentication and creates,
// on its first start, its service's own user with the password of the
// service's Secret, through the mongo image's init scripts; the service's
// MONGO_URI (as the kubelet expands it) logs in as that user, on the
// service's database, with that password.
func TestMongoAuthentication(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		script := ""
		for name, cm := range m.ConfigMaps {
			if strings.HasPrefix(name, "mongo-init") {
				script = cm.Data["create-service-user.js"]
			}
		}
		if script == "" {
			t.Fatal("no ConfigMap mongo-init with create-service-user.js")
		}
		scriptVars := map[string]bool{}
		for _, v := range regexp.MustCompile(`process\.env\.(\w+)`).FindAllStringSubmatch(script, -1) {
			scriptVars[v[1]] = true
		}
		if !strings.Contains(script, "createUser") || !strings.Contains(script, `role: "readWrite", db: db.getName()`) {
			t.Errorf("create-service-user.js does not create a user with readWrite on its database only:\n%s", script)
		}
		for _, svc := range services {
			d := m.Deployments[svc]
			ss := m.StatefulSets[svc+"-mongo"]
			if d == nil || ss == nil {
				t.Errorf("%s: no Deployment or no StatefulSet %s-mongo", svc, svc)
				continue
			}
			app, err := resolveEnv(m, d.Spec.Template.Spec.Containers[0], false)
			if err != nil {
				t.Fatal(err)
			}
			c := ss.Spec.Template.Spec.Containers[0]
			db, err := resolveEnv(m, c, false)
			if err != nil {
				t.Fatal(err)
			}
			u, err := parseMongoURI(app["MONGO_URI"])
			if err != nil {
				t.Errorf("%s: MONGO_URI: %v", svc, err)
				continue
			}
			if want := secretValue(svc+"-mongo", "MONGO_PASSWORD"); u.User != svc || u.Password != want {
				t.Errorf("%s: MONGO_URI logs in as %q with %q; want %q with the secret %s-mongo's MONGO_PASSWORD", svc, u.User, u.Password, svc, svc)
			}
			if got := u.Query.Get("authSource"); got != app["MONGO_DB"] || got != svc {
				t.Errorf("%s: authSource %q, MONGO_DB %q; the user is created in the service's database %q", svc, got, app["MONGO_DB"], svc)
			}
			for k, want := range map[string]string{
				"MONGO_INITDB_DATABASE":         svc,
				"MONGO_INITDB_SERVICE_USER":     u.User,
				"MONGO_INITDB_SERVICE_PASSWORD": u.Password,
				"MONGO_INITDB_ROOT_USERNAME":    "root",
				"MONGO_INITDB_ROOT_PASSWORD":    secretValue(svc+"-mongo", "MONGO_ROOT_PASSWORD"),
			} {
				if db[k] != want {
					t.Errorf("%s-mongo: %s=%q; want %q", svc, k, db[k], want)
				}
			}
			for v := range scriptVars {
				if _, ok := db[v]; !ok {
					t.Errorf("%s-mongo: create-service-user.js reads %s, which the container does not set", svc, v)
				}
			}
			// The script is in /docker-entrypoint-initdb.d, from the
			// generated ConfigMap.
			mounted := false
			for _, vm := range c.VolumeMounts {
				for _, v := range ss.Spec.Template.Spec.Volumes {
					if v.Name == vm.Name && v.ConfigMap != nil && strings.HasPrefix(v.ConfigMap.Name, "mongo-init") &&
						vm.MountPath == "/docker-entrypoint-initdb.d" && m.ConfigMaps[v.ConfigMap.Name] != nil {
						mounted = true
					}
				}
			}
			if !mounted {
				t.Errorf("%s-mongo: mongo-init is not mounted at /docker-entrypoint-initdb.d", svc)
			}
		}
	})
}
