"""The security APIs: Elasticsearch's _has_privileges (a 500 with security off), and
OpenSearch's authinfo (only with the opensearch-security plugin)."""

from __future__ import annotations

from .wire import Answer, ApiError, Call, Family, Route


class SecurityApi(Family):
    """Each flavor's own: POST _security/user/_has_privileges, or _plugins/_security/authinfo."""

    def security_routes(self) -> list[Route]:
        if self.flavor == "elasticsearch":
            return [("POST|GET", ("_security", "user", "_has_privileges"), self._has_privileges)]
        return [("GET|POST", ("_plugins", "_security", "authinfo"), self._authinfo)]

    def _has_privileges(self, call: Call) -> Answer:
        body = self._body(call)
        cluster = list(body.get("cluster") or [])
        index = [(list(e["names"]), list(e["privileges"])) for e in body.get("index") or []]
        result = self.fake.has_privileges(cluster, index)
        if result is None:
            reason = (
                "Security must be explicitly enabled when using a [basic] license. Enable "
                "security by setting [xpack.security.enabled] to [true] in the "
                "elasticsearch.yml file and restart the node."
            )
            raise ApiError(500, "exception", reason)
        missing = set(result.missing)
        return 200, {
            "username": result.user,
            "has_all_requested": not missing,
            "cluster": {p: f"cluster:{p}" not in missing for p in cluster},
            "index": {
                name: {p: f"{name}:{p}" not in missing for p in privileges}
                for names, privileges in index
                for name in names
            },
            "application": {},
        }

    def _authinfo(self, call: Call) -> Answer:
        if "opensearch-security" not in self.fake.plugin_names:
            raise ApiError(
                400,
                "illegal_argument_exception",
                "no handler found for uri [/_plugins/_security/authinfo] "
                f"and method [{call.method}]",
            )
        return 200, {
            "user": f"User [name={self.fake.security_user}, backend_roles=[]]",
            "user_name": self.fake.security_user,
            "backend_roles": [],
            "roles": list(self.fake.security_roles),
            "tenants": {},
        }
