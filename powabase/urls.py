from django.contrib import admin
from django.urls import include, path

from . import views
from .routing import route

urlpatterns = [
    path("admin/", admin.site.urls),
    *route("api/schema", views.SchemaView.as_view(), "schema"),
    *route("api/docs", views.SwaggerView.as_view(url_name="schema"), "swagger-ui"),
    path("api/", include("agents.api.urls")),
    path("api/", include("orchestrations.api.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("", include("orchestrations.urls")),
]

handler404 = "powabase.views.not_found"
handler500 = "powabase.views.internal_error"
handler400 = "powabase.views.bad_request"
