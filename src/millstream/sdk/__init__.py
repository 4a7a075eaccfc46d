"""The authoring API (imports core only)."""
