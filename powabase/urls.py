from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/", include("agents.api.urls")),
    path("api/", include("orchestrations.api.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("", include("orchestrations.urls")),
]

handler404 = "powabase.views.not_found"
handler500 = "powabase.views.internal_error"
handler400 = "powabase.views.bad_request"
