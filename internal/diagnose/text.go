package diagnose

import (
	"fmt"
	"strings"
)

// Title is the cause in plain words, short enough for a Slack header.
func (c Cause) Title() string {
	switch c {
	case RepoNotFound:
		return "Repository not found"
	case TagNotFound:
		return "Tag not found"
	case DigestNotFound:
		return "Digest not found"
	case ImageNotFound:
		return "Image not found (repository or tag)"
	case NotFoundOrUnauthorized:
		return "Image not found or private"
	case Unauthorized:
		return "Registry credentials missing or rejected"
	case AccessDenied:
		return "Access to the image denied"
	case CredentialsExpired:
		return "Registry credentials expired"
	case RateLimited:
		return "Registry rate limit reached"
	case RegistryUnavailable:
		return "Registry unavailable (server error)"
	case DNSFailure:
		return "Registry host does not resolve"
	case NetworkTimeout:
		return "Registry unreachable (timeout)"
	case ConnectionRefused:
		return "Registry refused the connection"
	case TLSError:
		return "Registry certificate not trusted"
	case HTTPVsHTTPS:
		return "Registry speaks HTTP, not HTTPS"
	case PlatformMismatch:
		return "No image for the node's platform"
	case InvalidReference:
		return "Invalid image reference"
	case NeverPull:
		return "Image absent and pull policy is Never"
	case UnpackFailed:
		return "Image pulled but could not be unpacked"
	default:
		return "Image pull failed"
	}
}

// Describe writes the one-line summary and the remedy for a cause. image and
// registry may be empty (the message did not name them); the text then
// stays general rather than inventing a name. Both the offline classifier
// and the registry probe use it, so a cause reads the same wherever it was
// decided.
func Describe(c Cause, image, registry string) (summary, remedy string) {
	img := "the image"
	if image != "" {
		img = fmt.Sprintf("%q", image)
	}
	reg := "the registry"
	if registry != "" {
		reg = registry
	}
	ecr := isECR(registry)
	ecrPublic := registry == "public.ecr.aws"
	hub := registry == "docker.io"

	switch c {
	case RepoNotFound:
		summary = fmt.Sprintf("The repository of %s does not exist on %s.", img, reg)
		remedy = "Check the repository path for a typo (organisation, project, hyphens and plurals); " +
			"pick the closest existing repository or the image of the last working revision, and update the workload's image."
	case TagNotFound:
		summary = fmt.Sprintf("%s answered that the tag of %s does not exist (manifest unknown).", reg, img)
		remedy = "Check the tag was pushed (CI may have failed or used another tag); " +
			"use an existing tag or roll back to the last working image."
	case ImageNotFound:
		summary = fmt.Sprintf("%s has no %s: the repository or the tag does not exist there; the kubelet's words do not say which.", reg, img)
		remedy = "Check the repository path (organisation, project, hyphens, plurals) and the tag for a typo, and that the tag was pushed; " +
			"pullfix's registry probe (`bot diagnose`, or Re-check in Slack) asks the registry which of the two is missing. " +
			"Some registries also answer this for a private image pulled without credentials."
	case DigestNotFound:
		summary = fmt.Sprintf("The digest pinned by %s (or a manifest its index points to) is missing on %s.", img, reg)
		remedy = "Re-pin the image to a digest that exists (the registry may have garbage-collected it), " +
			"or republish the image; check retention/lifecycle policies on the repository."
	case NotFoundOrUnauthorized:
		summary = fmt.Sprintf("%s refused %s: either it does not exist or it is private and the pull had no access.", reg, img)
		remedy = "Check the repository and tag exist (typos are the usual cause); if the image is private, " +
			"add an imagePullSecret with credentials that can read it to the pod or its service account."
		if hub {
			remedy += " Docker Hub answers the same for missing and private repositories; short names resolve to docker.io/library/."
		}
	case Unauthorized:
		summary = fmt.Sprintf("%s rejected the pull of %s: no valid credentials were presented.", reg, img)
		switch {
		case ecr:
			remedy = "Private ECR needs credentials: give the node IAM role AmazonEC2ContainerRegistryReadOnly " +
				"(ecr:GetAuthorizationToken, ecr:BatchGetImage, ecr:GetDownloadUrlForLayer) or enable the kubelet's ECR credential provider, " +
				"or add an imagePullSecret for the registry."
		default:
			remedy = fmt.Sprintf("Add or fix the imagePullSecrets on the pod or its service account: a kubernetes.io/dockerconfigjson secret "+
				"whose server key matches %s exactly, in the pod's namespace.", reg)
		}
	case AccessDenied:
		summary = fmt.Sprintf("%s refused %s to the credentials that were presented: they lack pull permission on it.", reg, img)
		switch {
		case ecr:
			remedy = "Grant pull rights on the repository: the node IAM role (or the imagePullSecrets' identity) needs " +
				"ecr:GetAuthorizationToken, ecr:BatchGetImage and ecr:GetDownloadUrlForLayer (e.g. the AmazonEC2ContainerRegistryReadOnly " +
				"managed policy); for a cross-account repository also allow the role in the repository policy."
		case ecrPublic:
			remedy = "ECR Public is readable anonymously; a denied pull usually means stale or wrong credentials for public.ecr.aws " +
				"(remove them from imagePullSecrets) or a repository that does not exist under that alias."
		default:
			remedy = fmt.Sprintf("Grant the account used by the imagePullSecrets (or the node identity) read access on %s "+
				"in the registry's access control, or use credentials that have it.", img)
		}
	case CredentialsExpired:
		summary = fmt.Sprintf("The credentials used to pull %s from %s have expired.", img, reg)
		if ecr {
			remedy = "ECR tokens last 12 hours: stop storing `aws ecr get-login-password` output in a static secret; " +
				"use the kubelet ECR credential provider / node IAM role, or refresh the secret on a schedule."
		} else {
			remedy = "Refresh the imagePullSecret (new token or password) and use a credential provider or a job that renews it before it expires."
		}
	case RateLimited:
		summary = fmt.Sprintf("%s is rate-limiting pulls of %s (HTTP 429).", reg, img)
		remedy = "Authenticate pulls (an imagePullSecret with a paid or authenticated account), use a registry mirror " +
			"or pull-through cache, and avoid imagePullPolicy: Always on large fleets."
		if hub {
			remedy += " Docker Hub limits anonymous pulls per source IP, which a NAT gateway shares across all nodes."
		}
	case RegistryUnavailable:
		summary = fmt.Sprintf("%s answered with a server error (5xx) or is unavailable: the registry is failing, not the image %s.", reg, img)
		remedy = fmt.Sprintf("Check %s's status page (or, if it is yours, its pods, storage and load balancer); the kubelet retries by itself "+
			"and pulls resume once it recovers. A registry mirror or pull-through cache removes this dependency; "+
			"re-create the pods to retry at once when it is back.", reg)
	case DNSFailure:
		summary = fmt.Sprintf("The node could not resolve the registry host %s for %s.", reg, img)
		remedy = "Check the host name for a typo; check the node's DNS resolver (/etc/resolv.conf, VPC DNS, private hosted zones " +
			"or split-horizon DNS for private registries) and that the node can reach it."
	case NetworkTimeout:
		summary = fmt.Sprintf("The node timed out reaching %s to pull %s.", reg, img)
		remedy = "Check node egress to the registry: a route through a NAT gateway, internet gateway or transit gateway, " +
			"security groups and network ACLs allowing outbound 443, the HTTP(S) proxy settings of the container runtime, " +
			"and VPC endpoints for private registries."
		if ecr {
			remedy += " For ECR in private subnets, VPC endpoints for ecr.api, ecr.dkr and S3 are required."
		}
	case ConnectionRefused:
		summary = fmt.Sprintf("%s refused, reset or closed the connection while pulling %s.", reg, img)
		remedy = "Check the registry is up and listening on that port (a wrong port in the reference is common), " +
			"and that no firewall or proxy resets the connection from the nodes."
	case TLSError:
		summary = fmt.Sprintf("The node does not trust the TLS certificate of %s for %s.", reg, img)
		remedy = "Install the registry's CA on the nodes (container runtime certs.d / system trust store) or fix the certificate " +
			"(expired, self-signed, or issued for another host name); a TLS-intercepting proxy needs its CA trusted too."
	case HTTPVsHTTPS:
		summary = fmt.Sprintf("%s answers plain HTTP but the runtime spoke HTTPS to pull %s.", reg, img)
		remedy = "Serve the registry over TLS, or configure it as an insecure/HTTP registry on every node's runtime " +
			"(containerd hosts.toml with http://, CRI-O registries.conf insecure = true, Docker insecure-registries)."
	case PlatformMismatch:
		summary = fmt.Sprintf("%s has no manifest for the node's OS/architecture.", img)
		remedy = "Use a multi-arch tag that includes the node's platform, build and push the image for it, " +
			"or schedule the pod onto matching nodes with a kubernetes.io/arch nodeSelector."
	case InvalidReference:
		summary = fmt.Sprintf("The image reference %s is not valid.", img)
		remedy = "Fix the reference text in the workload: lower-case repository, no spaces or leading slash, " +
			"a valid tag (letters, digits, _ . -) or @sha256 digest, and rendered templates (no {{ }} or ${})."
	case NeverPull:
		summary = fmt.Sprintf("imagePullPolicy is Never and the node will not use %s: either it is not present on the node, "+
			"or (with KubeletEnsureSecretPulledImages, beta since Kubernetes 1.35) it is present but was pulled with credentials "+
			"this pod is not shown to hold; the kubelet's message is the same for both.", img)
		remedy = "Preload the image on every node that can run the pod, or set imagePullPolicy to IfNotPresent (or Always); " +
			"if the image is on the node, give the pod the imagePullSecret it was pulled with."
	case UnpackFailed:
		summary = fmt.Sprintf("%s was downloaded but could not be unpacked on the node.", img)
		remedy = "Check the node's disk (the runtime's root, e.g. /var/lib/containerd): free space and inodes, image garbage collection; " +
			"if the disk is fine, the layer may be corrupt: re-push the image or drain the node."
	default:
		summary = fmt.Sprintf("Pulling %s failed for a reason the message does not say.", img)
		remedy = "Read the pod's events (kubectl describe pod) for the kubelet's full error, and check the node's runtime logs."
	}
	return summary, remedy
}

// DescribeSettled is Describe for a not-found cause the registry itself
// answered to pullfix's probe: it says which of repository and tag is
// missing, and that the registry said so. Other causes read as Describe.
func DescribeSettled(c Cause, image, registry string) (summary, remedy string) {
	summary, remedy = Describe(c, image, registry)
	img := "the image"
	if image != "" {
		img = fmt.Sprintf("%q", image)
	}
	reg := "the registry"
	if registry != "" {
		reg = registry
	}
	switch c {
	case RepoNotFound:
		summary = fmt.Sprintf("The repository of %s does not exist on %s: the registry said so when pullfix asked.", img, reg)
	case TagNotFound:
		summary = fmt.Sprintf("The repository exists on %s but the tag of %s does not: the registry said so when pullfix asked.", reg, img)
	case DigestNotFound:
		summary = fmt.Sprintf("The digest pinned by %s (or a manifest its index points to) is missing on %s: the registry said so when pullfix asked.", img, reg)
	}
	return summary, remedy
}

// isECR reports whether host is a private Amazon ECR registry, whose
// permissions live on IAM identities rather than in the registry.
func isECR(host string) bool {
	return strings.Contains(host, ".dkr.ecr.") && (strings.HasSuffix(host, ".amazonaws.com") || strings.HasSuffix(host, ".amazonaws.com.cn"))
}
