"""REST API routes of the registry, mounted under /api/v1/."""
urlpatterns: list = []
