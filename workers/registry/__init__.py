"""The OCI Distribution client a worker uses for promote, delete, rollback, tags and inspect.

``client`` (RegistryClient: tags, manifests, blobs), ``auth`` (Basic and Bearer tokens),
``manifests`` (the four media types, digests, parsing), ``inspection`` (what an image is),
``copy`` (byte-exact copies between tags, repositories and registries), ``transport`` (the
requests session, its pool and headers), ``errors`` (failures in users' words), ``urls`` (a
server's base URL).  HTTP only: no Docker engine, no CLI tool.
"""
