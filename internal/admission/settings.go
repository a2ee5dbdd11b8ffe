package admission

import (
	"fmt"
	"time"
)

// Settings are the webhook's PULLFIX_ADMISSION_* variables, embedded in
// the bot's configuration (envconfig reads an embedded struct's fields as
// its own) so the webhook's settings live with the webhook.
type Settings struct {
	Admission              bool          `envconfig:"ADMISSION" default:"false" desc:"serve the validating admission webhook that warns at apply when a new image cannot be pulled"`
	AdmissionAddr          string        `envconfig:"ADMISSION_ADDR" default:":8443" desc:"HTTPS address of the webhook (path /validate)"`
	AdmissionBudget        time.Duration `envconfig:"ADMISSION_BUDGET" default:"2s" desc:"hard time budget of one review; a registry slower than this means allowed, no warning (keep it well under the webhook's timeoutSeconds)"`
	AdmissionDeny          []string      `envconfig:"ADMISSION_DENY" desc:"namespaces where an image the registry shows missing is refused instead of warned about"`
	AdmissionWebhookConfig string        `envconfig:"ADMISSION_WEBHOOK_CONFIG" default:"pullfix" desc:"the ValidatingWebhookConfiguration whose caBundle the bot keeps (its own certificates)"`
	AdmissionCASecret      string        `envconfig:"ADMISSION_CA_SECRET" default:"pullfix-admission-ca" desc:"the Secret in PULLFIX_POD_NAMESPACE that holds the webhook's CA (created by the first replica)"`
	AdmissionService       string        `envconfig:"ADMISSION_SERVICE" default:"pullfix-admission" desc:"the webhook's Service, named in the serving certificate"`
	AdmissionHosts         []string      `envconfig:"ADMISSION_HOSTS" desc:"more names and IP addresses for the bot's own serving certificate (a webhook reached by clientConfig.url, e.g. 127.0.0.1)"`
	AdmissionCertDir       string        `envconfig:"ADMISSION_CERT_DIR" desc:"serve tls.crt/tls.key from this directory (cert-manager) instead of the bot's own CA"`
}

// Check rejects settings the webhook cannot start with, naming the
// variable; podNamespace is the bot's own namespace (PULLFIX_POD_NAMESPACE).
func (s Settings) Check(podNamespace string) error {
	if s.Admission && s.AdmissionCertDir == "" && podNamespace == "" {
		return fmt.Errorf("configuration: PULLFIX_ADMISSION needs PULLFIX_POD_NAMESPACE (the namespace of its CA Secret and Service) or PULLFIX_ADMISSION_CERT_DIR")
	}
	if s.Admission && s.AdmissionBudget <= 0 {
		return fmt.Errorf("configuration: PULLFIX_ADMISSION_BUDGET must be positive, got %s", s.AdmissionBudget)
	}
	return nil
}
