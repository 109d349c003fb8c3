"""One file per registered family declaring its numeric specialisations
(:class:`fishsym.kernels.numeric.NumericFamily`); every module here is imported, so
adding a family's numeric side is adding its file."""

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
