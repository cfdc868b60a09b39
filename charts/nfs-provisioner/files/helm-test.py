# `helm test` of the nfs-provisioner chart: run in a pod of the chart's image (Python, standard
# library only) under the provisioner's ServiceAccount. Checks that the StorageClass exists and
# names this release's provisioner, and that the provisioner answers /readyz with 200 (its
# caches are synced). Every setting comes from the environment; one line per check on stdout,
# exit code 1 when any fails.
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def get(url, token=None, context=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError as error:
        return 0, str(error)


def check_storage_class():
    name = os.environ["STORAGE_CLASS"]
    api = os.environ.get("KUBERNETES_API") or "https://{}:{}".format(
        os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    )
    with open(os.environ.get("TOKEN_FILE", ACCOUNT + "/token")) as token_file:
        token = token_file.read().strip()
    context = ssl.create_default_context(cafile=os.environ.get("CA_FILE", ACCOUNT + "/ca.crt"))
    # The provisioner's ServiceAccount may list classes (not get them).
    selector = urllib.parse.quote("metadata.name=" + name)
    url = api + "/apis/storage.k8s.io/v1/storageclasses?fieldSelector=" + selector
    status, body = get(url, token, context)
    if status != 200:
        return "StorageClass {}: listing classes failed ({}): {}".format(name, status, body[:300])
    items = json.loads(body).get("items", [])
    if not items:
        return "StorageClass {} does not exist".format(name)
    provisioner = items[0].get("provisioner")
    if provisioner != os.environ["PROVISIONER_NAME"]:
        return "StorageClass {} names provisioner {}, not {}".format(
            name, provisioner, os.environ["PROVISIONER_NAME"]
        )
    return None


def check_ready():
    url = os.environ["READYZ_URL"]
    status, body = get(url)
    if status != 200:
        return "provisioner not ready: {} answered {} {}".format(url, status, body.strip()[:300])
    return None


def main():
    checks = []
    if os.environ.get("STORAGE_CLASS"):
        checks.append(("StorageClass", check_storage_class))
    if os.environ.get("READYZ_URL"):
        checks.append(("readiness", check_ready))
    failed = False
    for name, check in checks:
        problem = check()
        print("FAIL " + problem if problem else "ok   " + name, flush=True)
        failed = failed or problem is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
