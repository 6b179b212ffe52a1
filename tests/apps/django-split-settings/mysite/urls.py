import os

from django.http import JsonResponse
from django.urls import path


def index(request):
    return JsonResponse({"app": "django-split-settings", "port": os.environ.get("PORT"), "service": os.environ.get("GAE_SERVICE")})


urlpatterns = [path("", index)]
