from tests.events.asyncsupport import idp, other_idp  # noqa: F401
from tests.oversight.conftest import decide, hold_rule, operators  # noqa: F401
from tests.scim.conftest import scim  # noqa: F401
