"""Customer-support templates: chats, calls, emails, SMS threads, forms and agent notes.

The topics are orders, deliveries, cards, refunds, billing and account changes. No template uses
the phrase of the canary prefix, so the canary context occurs only in canary insertions.
"""

from __future__ import annotations

from privft.data.synth.template import Template

ID_PREFIX = "cs"
CANARY_PREFIX = (
    "Agent: Before I approve the login from your new device, please read me the code we just "
    "texted you.\nCustomer: Sure, my verification code is "
)
CANARY_SUFFIX = "."

_PATTERNS = (
    # Chat: redirect an order.
    "Customer: Hi, I placed order {order} on {date} and need it shipped to a different place.\n"
    "Agent: Happy to help. May I have the name on the order?\n"
    "Customer: It's {name}.\n"
    "Agent: Thanks, {first_name}. What is the new delivery address?\n"
    "Customer: Please send the {product} to {address}.\n"
    "Agent: Done. It should arrive within {days} business days, and we will text tracking "
    "updates to {phone}.",
    # Phone call: lost card.
    "Agent: Thank you for calling {store} card services. Who am I speaking with?\n"
    "Customer: This is {name}. I think I lost my card yesterday.\n"
    "Agent: Sorry to hear that. For security, can you confirm your date of birth?\n"
    "Customer: {dob}.\n"
    "Agent: Thank you. I have frozen card number {card} and ordered a replacement, which will be "
    "mailed to {address}.\n"
    "Customer: Great, thanks.\n"
    "Agent: You're welcome, {first_name}. Is there anything else I can do today?",
    # Email ticket: duplicate charge.
    "Ticket {ticket} | Channel: email | Priority: normal\n"
    "From: {email}\n"
    "Subject: Charged twice\n\n"
    "Hello, my name is {name} and I was charged {amount} twice for the {product} I bought on "
    "{date}. The card I used was {card}. Could you refund the duplicate payment? You can reach "
    "me at {phone} on {weekday} afternoons.\n"
    "Thanks,\n{first_name}",
    # Chat: change the sign-in email.
    "Customer: Hello, I'd like to update the email on my {store} account.\n"
    "Agent: Sure. Can you tell me the full name and phone number on the account?\n"
    "Customer: {name}, and the phone is {phone}.\n"
    "Agent: Thanks. What should the new email be?\n"
    "Customer: {email}.\n"
    "Agent: All set, {first_name}. A confirmation link is on its way to the new inbox. It "
    "expires in {days} days, so please open it soon.",
    # Call summary: billing address.
    "Call summary ({time}, {weekday})\n"
    "Caller: {name}\n"
    "Reason: wants to change the billing address for the {plan} plan.\n"
    "Checks: date of birth {dob_numeric} matched; callback number {phone}.\n"
    "Outcome: billing address updated to {address}. Customer {last_name} also asked about the "
    "{amount} late fee, which we waived as a one-time courtesy.\n"
    "Follow-up: none needed.",
    # Chat log: missing refund.
    "Chat opened at {time}\n"
    "Customer: Hi, I returned the {product} last week but haven't seen my refund yet.\n"
    "Agent: Let me check. Could you share the order number and the email on file?\n"
    "Customer: Order {order}, email {email}.\n"
    "Agent: Thanks. The return arrived on {date}, and the refund of {amount} went to card "
    "{card}.\n"
    "Customer: Okay, I'll keep an eye out. This is {name}, by the way.\n"
    "Agent: Thanks, {first_name}. Refunds usually post within {days} business days.",
    # Form plus note: new account.
    "New account request\n"
    "Applicant: {name}\n"
    "Date of birth: {dob}\n"
    "Home address: {address}\n"
    "Mobile: {phone}\n"
    "Email: {email}\n"
    "Agent note: {first_name} chose the {plan} plan and opted out of marketing messages. "
    "Identity documents were checked in store on {date}. The welcome kit will be mailed within "
    "{days} days.",
    # Outbound call: failed payment.
    "Agent: Hi, I'm calling from {store} about your {plan} subscription. Is this {name}?\n"
    "Customer: Yes, speaking.\n"
    "Agent: Your last payment of {amount} did not go through. We tried to debit account "
    "{account} on {date}.\n"
    "Customer: Oh, I switched banks. Can you use my card instead? The number is {card}.\n"
    "Agent: Of course. I've updated it, {first_name}, and the charge will retry tonight. The "
    "receipt will go to {email}.",
    # Chat: close the account.
    "Customer: I want to close my account, please.\n"
    "Agent: I'm sorry to see you go. Can you confirm the account holder's name and date of "
    "birth?\n"
    "Customer: {name}, born {dob}.\n"
    "Agent: Thank you. May I ask why you're leaving?\n"
    "Customer: I'm moving abroad next month.\n"
    "Agent: Understood. The remaining balance of {amount} will go back to account {account}, and "
    "a closing statement will be mailed to {address}. Good luck with the move, {first_name}.",
    # SMS thread: delivery.
    "SMS from {store}: Hi {first_name}, your {product} (order {order}) is out for delivery to "
    "{address}. Reply HELP for options.\n"
    "Reply from {phone}: Can you leave it with the neighbor? I won't be home until {time}.\n"
    "SMS from {store}: Sure, we've added that note for the driver. For other changes, write to "
    "us from {email} and quote order {order}. Thanks, {name}!",
    # Chat: locked out.
    "Customer: I'm locked out of my account after too many password attempts.\n"
    "Agent: I can unlock it. What's the email you sign in with?\n"
    "Customer: {email}.\n"
    "Agent: I see an account for {name}. Is that you?\n"
    "Customer: Yes.\n"
    "Agent: Please tell me the phone number we have on file.\n"
    "Customer: It should be {phone}.\n"
    "Agent: That matches. I've sent a reset link, {first_name}. It stays valid for {days} hours.",
    # Customer email: warranty claim.
    "Subject: Warranty claim for {product}\n\n"
    "Dear support team,\n"
    "The {product} I bought from {store} on {date} stopped working after a few weeks. I paid "
    "{amount} with card {card} and still have the receipt. Please send a replacement or a "
    "return label to {address}. My phone is {phone} if you need to call. The order is under the "
    "name {last_name}.\n"
    "Kind regards,\n{name}",
    # Internal note: missing delivery.
    "Internal note, ticket {ticket}: customer {name} called twice about a missing delivery. "
    "Order {order} shows as delivered on {date}, but {first_name} says nothing arrived at "
    "{address}. Identity confirmed with date of birth {dob_numeric} and email {email}. Please "
    "open a carrier trace and call back on {phone} before {weekday}. Offer a {amount} credit if "
    "the trace finds nothing.",
    # Phone call with Rep/Caller labels: new number.
    "Rep: {store} customer care, how can I help?\n"
    "Caller: Hi, I got a new phone number and need to update my profile.\n"
    "Rep: Sure. Whose account is it?\n"
    "Caller: Mine, {name}. Date of birth {dob}.\n"
    "Rep: Thank you. And the new number?\n"
    "Caller: {phone}.\n"
    "Rep: Updated. Would you like text alerts for your {plan} plan on that number?\n"
    "Caller: Yes, please.\n"
    "Rep: Done. Have a good {weekday}, {first_name}.",
    # Dispute form.
    "Dispute form\n"
    "Cardholder: {name}\n"
    "Card number: {card}\n"
    "Merchant: {store}\n"
    "Amount disputed: {amount}\n"
    "Transaction date: {date}\n"
    "Description: the cardholder says the {product} never arrived and the seller stopped "
    "replying. {first_name} asked us to send updates to {email}. Supporting documents were "
    "uploaded on {weekday}.\n"
    "Status: under review, with a decision expected in {days} business days.",
    # Chat: loyalty sign-up.
    "Agent: Welcome to the {store} rewards program! I just need a few details. Your full name?\n"
    "Customer: {name}.\n"
    "Agent: And your birthday? Members get a small gift that month.\n"
    "Customer: {dob}.\n"
    "Agent: Lovely. Which email should get your points statements?\n"
    "Customer: {email}.\n"
    "Agent: Perfect, {first_name}. Your first {amount} voucher will arrive within {days} days, "
    "and you can use it on anything except gift cards.",
    # Chat: fix a typo in the address.
    "Customer: Hi, I just noticed a typo in the shipping address for order {order}.\n"
    "Agent: No problem. Could you confirm the name on the order?\n"
    "Customer: {name}.\n"
    "Agent: Thanks. What's the correct address?\n"
    "Customer: It should be {address}. The street number was wrong.\n"
    "Agent: Fixed. The {product} hasn't shipped yet, so nothing else is needed. We'll email "
    "{email} when it leaves the warehouse, {first_name}.",
    # Agent email: payout account changed.
    "Hi {first_name},\n\n"
    "Thanks for getting in touch about your payout details. As you asked, we replaced the bank "
    "details on your seller account with account number {account}. From {date}, payouts over "
    "{amount} will go there automatically.\n\n"
    "If you did not request this change, call us right away from {phone} and quote ticket "
    "{ticket}.\n\n"
    "Best,\nThe {store} payments team\n"
    "(Sent to {name} at {email})",
)

TEMPLATES = tuple(
    Template(f"{ID_PREFIX}-{number:02d}", pattern) for number, pattern in enumerate(_PATTERNS)
)
