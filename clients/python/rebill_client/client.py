from typing import Any, Optional, Union

from .activate_subscription import ActivateSubscription
from .async_base_client import AsyncBaseClient
from .base_model import UNSET, UnsetType
from .cancel_subscription import CancelSubscription
from .change_next_renewal_date import ChangeNextRenewalDate
from .create_webhook_endpoint import CreateWebhookEndpoint
from .delete_webhook_endpoint import DeleteWebhookEndpoint
from .force_bill import ForceBill
from .get_subscription import GetSubscription
from .input_types import (
    ActivateSubscriptionInput,
    CancelSubscriptionInput,
    ChangeNextRenewalDateInput,
    CreateWebhookEndpointInput,
    DeleteWebhookEndpointInput,
    ForceBillInput,
    RefundRenewalInput,
    RenewNowInput,
    ResumeSubscriptionInput,
    RetryRenewalInput,
    RotateWebhookSecretInput,
    SubscriptionFilter,
    SubscriptionOrder,
    SuspendSubscriptionInput,
    UpdateWebhookEndpointInput,
)
from .list_subscriptions import ListSubscriptions
from .refund_renewal import RefundRenewal
from .renew_now import RenewNow
from .resume_subscription import ResumeSubscription
from .retry_renewal import RetryRenewal
from .rotate_webhook_secret import RotateWebhookSecret
from .subscription_history import SubscriptionHistory
from .suspend_subscription import SuspendSubscription
from .update_webhook_endpoint import UpdateWebhookEndpoint
from .webhook_endpoints import WebhookEndpoints


def gql(q: str) -> str:
    return q


class RebillClient(AsyncBaseClient):
    async def list_subscriptions(
        self,
        filter_: Union[Optional[SubscriptionFilter], UnsetType] = UNSET,
        order_by: Union[Optional[SubscriptionOrder], UnsetType] = UNSET,
        first: Union[Optional[int], UnsetType] = UNSET,
        after: Union[Optional[str], UnsetType] = UNSET,
        last: Union[Optional[int], UnsetType] = UNSET,
        before: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> ListSubscriptions:
        query = gql("""
            query ListSubscriptions($filter: SubscriptionFilter, $orderBy: SubscriptionOrder, $first: Int, $after: String, $last: Int, $before: String) {
              subscriptions(
                filter: $filter
                orderBy: $orderBy
                first: $first
                after: $after
                last: $last
                before: $before
              ) {
                totalCount
                pageInfo {
                  ...PageFields
                }
                edges {
                  cursor
                  node {
                    ...SubscriptionFields
                  }
                }
              }
            }

            fragment MoneyFields on Money {
              amount
              currency
            }

            fragment PageFields on PageInfo {
              hasNextPage
              hasPreviousPage
              startCursor
              endCursor
            }

            fragment SubscriptionFields on Subscription {
              id
              status
              renewalType
              version
              currency
              startDate
              nextRenewalDate
              trialEndDate
              endDate
              cancelAtPeriodEnd
              metadata
              createdAt
              updatedAt
              amount {
                ...MoneyFields
              }
              customer {
                id
                email
                name
              }
              profile {
                id
                name
              }
              items {
                id
                quantity
                unitPrice {
                  ...MoneyFields
                }
                total {
                  ...MoneyFields
                }
                product {
                  id
                  sku
                  name
                }
              }
            }
            """)
        variables: dict[str, object] = {
            "filter": filter_,
            "orderBy": order_by,
            "first": first,
            "after": after,
            "last": last,
            "before": before,
        }
        response = await self.execute(
            query=query,
            operation_name="ListSubscriptions",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return ListSubscriptions.model_validate(data)

    async def get_subscription(self, id: str, **kwargs: Any) -> GetSubscription:
        query = gql("""
            query GetSubscription($id: ID!) {
              subscription(id: $id) {
                ...SubscriptionFields
                renewals(first: 10) {
                  edges {
                    node {
                      ...RenewalFields
                    }
                  }
                }
              }
            }

            fragment MoneyFields on Money {
              amount
              currency
            }

            fragment RenewalFields on Renewal {
              id
              cycle
              kind
              status
              periodStart
              periodEnd
              amount {
                ...MoneyFields
              }
              refundedAmount {
                ...MoneyFields
              }
              attempts
              createdAt
            }

            fragment SubscriptionFields on Subscription {
              id
              status
              renewalType
              version
              currency
              startDate
              nextRenewalDate
              trialEndDate
              endDate
              cancelAtPeriodEnd
              metadata
              createdAt
              updatedAt
              amount {
                ...MoneyFields
              }
              customer {
                id
                email
                name
              }
              profile {
                id
                name
              }
              items {
                id
                quantity
                unitPrice {
                  ...MoneyFields
                }
                total {
                  ...MoneyFields
                }
                product {
                  id
                  sku
                  name
                }
              }
            }
            """)
        variables: dict[str, object] = {"id": id}
        response = await self.execute(
            query=query, operation_name="GetSubscription", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return GetSubscription.model_validate(data)

    async def subscription_history(
        self,
        id: str,
        first: Union[Optional[int], UnsetType] = UNSET,
        after: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> SubscriptionHistory:
        query = gql("""
            query SubscriptionHistory($id: ID!, $first: Int, $after: String) {
              subscription(id: $id) {
                id
                history(first: $first, after: $after) {
                  pageInfo {
                    ...PageFields
                  }
                  edges {
                    node {
                      id
                      occurredAt
                      actor
                      action
                      reason
                      changes {
                        field
                        before
                        after
                      }
                    }
                  }
                }
              }
            }

            fragment PageFields on PageInfo {
              hasNextPage
              hasPreviousPage
              startCursor
              endCursor
            }
            """)
        variables: dict[str, object] = {"id": id, "first": first, "after": after}
        response = await self.execute(
            query=query,
            operation_name="SubscriptionHistory",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return SubscriptionHistory.model_validate(data)

    async def suspend_subscription(
        self, input: SuspendSubscriptionInput, **kwargs: Any
    ) -> SuspendSubscription:
        query = gql("""
            mutation SuspendSubscription($input: SuspendSubscriptionInput!) {
              suspendSubscription(input: $input) {
                userErrors {
                  ...ErrorFields
                }
                subscription {
                  ...SubscriptionFields
                }
              }
            }

            fragment ErrorFields on UserError {
              field
              code
              message
            }

            fragment MoneyFields on Money {
              amount
              currency
            }

            fragment SubscriptionFields on Subscription {
              id
              status
              renewalType
              version
              currency
              startDate
              nextRenewalDate
              trialEndDate
              endDate
              cancelAtPeriodEnd
              metadata
              createdAt
              updatedAt
              amount {
                ...MoneyFields
              }
              customer {
                id
                email
                name
              }
              profile {
                id
                name
              }
              items {
                id
                quantity
                unitPrice {
                  ...MoneyFields
                }
                total {
                  ...MoneyFields
                }
                product {
                  id
                  sku
                  name
                }
              }
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query,
            operation_name="SuspendSubscription",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return SuspendSubscription.model_validate(data)

    async def activate_subscription(
        self, input: ActivateSubscriptionInput, **kwargs: Any
    ) -> ActivateSubscription:
        query = gql("""
            mutation ActivateSubscription($input: ActivateSubscriptionInput!) {
              activateSubscription(input: $input) {
                userErrors {
                  ...ErrorFields
                }
                subscription {
                  ...SubscriptionFields
                }
              }
            }

            fragment ErrorFields on UserError {
              field
              code
              message
            }

            fragment MoneyFields on Money {
              amount
              currency
            }

            fragment SubscriptionFields on Subscription {
              id
              status
              renewalType
              version
              currency
              startDate
              nextRenewalDate
              trialEndDate
              endDate
              cancelAtPeriodEnd
              metadata
              createdAt
              updatedAt
              amount {
                ...MoneyFields
              }
              customer {
                id
                email
                name
              }
              profile {
                id
                name
              }
              items {
                id
                quantity
                unitPrice {
                  ...MoneyFields
                }
                total {
                  ...MoneyFields
                }
                product {
                  id
                  sku
                  name
                }
              }
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query,
            operation_name="ActivateSubscription",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return ActivateSubscription.model_validate(data)

    async def cancel_subscription(
        self, input: CancelSubscriptionInput, **kwargs: Any
    ) -> CancelSubscription:
        query = gql("""
            mutation CancelSubscription($input: CancelSubscriptionInput!) {
              cancelSubscription(input: $input) {
                userErrors {
                  ...ErrorFields
                }
                subscription {
                  ...SubscriptionFields
                }
                refund {
                  id
                  amount {
                    ...MoneyFields
                  }
                }
              }
            }

            fragment ErrorFields on UserError {
              field
              code
              message
            }

            fragment MoneyFields on Money {
              amount
              currency
            }

            fragment SubscriptionFields on Subscription {
              id
              status
              renewalType
              version
              currency
              startDate
              nextRenewalDate
              trialEndDate
              endDate
              cancelAtPeriodEnd
              metadata
              createdAt
              updatedAt
              amount {
                ...MoneyFields
              }
              customer {
                id
                email
                name
              }
              profile {
                id
                name
              }
              items {
                id
                quantity
                unitPrice {
                  ...MoneyFields
                }
                total {
                  ...MoneyFields
                }
                product {
                  id
                  sku
                  name
                }
              }
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query,
            operation_name="CancelSubscription",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return CancelSubscription.model_validate(data)

    async def resume_subscription(
        self, input: ResumeSubscriptionInput, **kwargs: Any
    ) -> ResumeSubscription:
        query = gql("""
            mutation ResumeSubscription($input: ResumeSubscriptionInput!) {
              resumeSubscription(input: $input) {
                userErrors {
                  ...ErrorFields
                }
                subscription {
                  ...SubscriptionFields
                }
              }
            }

            fragment ErrorFields on UserError {
              field
              code
              message
            }

            fragment MoneyFields on Money {
              amount
              currency
            }

            fragment SubscriptionFields on Subscription {
              id
              status
              renewalType
              version
              currency
              startDate
              nextRenewalDate
              trialEndDate
              endDate
              cancelAtPeriodEnd
              metadata
              createdAt
              updatedAt
              amount {
                ...MoneyFields
              }
              customer {
                id
                email
                name
              }
              profile {
                id
                name
              }
              items {
                id
                quantity
                unitPrice {
                  ...MoneyFields
                }
                total {
                  ...MoneyFields
                }
                product {
                  id
                  sku
                  name
                }
              }
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query,
            operation_name="ResumeSubscription",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return ResumeSubscription.model_validate(data)

    async def change_next_renewal_date(
        self, input: ChangeNextRenewalDateInput, **kwargs: Any
    ) -> ChangeNextRenewalDate:
        query = gql("""
            mutation ChangeNextRenewalDate($input: ChangeNextRenewalDateInput!) {
              changeNextRenewalDate(input: $input) {
                userErrors {
                  ...ErrorFields
                }
                subscription {
                  ...SubscriptionFields
                }
              }
            }

            fragment ErrorFields on UserError {
              field
              code
              message
            }

            fragment MoneyFields on Money {
              amount
              currency
            }

            fragment SubscriptionFields on Subscription {
              id
              status
              renewalType
              version
              currency
              startDate
              nextRenewalDate
              trialEndDate
              endDate
              cancelAtPeriodEnd
              metadata
              createdAt
              updatedAt
              amount {
                ...MoneyFields
              }
              customer {
                id
                email
                name
              }
              profile {
                id
                name
              }
              items {
                id
                quantity
                unitPrice {
                  ...MoneyFields
                }
                total {
                  ...MoneyFields
                }
                product {
                  id
                  sku
                  name
                }
              }
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query,
            operation_name="ChangeNextRenewalDate",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return ChangeNextRenewalDate.model_validate(data)

    async def renew_now(self, input: RenewNowInput, **kwargs: Any) -> RenewNow:
        query = gql("""
            mutation RenewNow($input: RenewNowInput!) {
              renewNow(input: $input) {
                userErrors {
                  ...ErrorFields
                }
                subscription {
                  ...SubscriptionFields
                }
                renewal {
                  ...RenewalFields
                }
              }
            }

            fragment ErrorFields on UserError {
              field
              code
              message
            }

            fragment MoneyFields on Money {
              amount
              currency
            }

            fragment RenewalFields on Renewal {
              id
              cycle
              kind
              status
              periodStart
              periodEnd
              amount {
                ...MoneyFields
              }
              refundedAmount {
                ...MoneyFields
              }
              attempts
              createdAt
            }

            fragment SubscriptionFields on Subscription {
              id
              status
              renewalType
              version
              currency
              startDate
              nextRenewalDate
              trialEndDate
              endDate
              cancelAtPeriodEnd
              metadata
              createdAt
              updatedAt
              amount {
                ...MoneyFields
              }
              customer {
                id
                email
                name
              }
              profile {
                id
                name
              }
              items {
                id
                quantity
                unitPrice {
                  ...MoneyFields
                }
                total {
                  ...MoneyFields
                }
                product {
                  id
                  sku
                  name
                }
              }
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query, operation_name="RenewNow", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return RenewNow.model_validate(data)

    async def force_bill(self, input: ForceBillInput, **kwargs: Any) -> ForceBill:
        query = gql("""
            mutation ForceBill($input: ForceBillInput!) {
              forceBill(input: $input) {
                userErrors {
                  ...ErrorFields
                }
                subscription {
                  ...SubscriptionFields
                }
                renewal {
                  ...RenewalFields
                }
              }
            }

            fragment ErrorFields on UserError {
              field
              code
              message
            }

            fragment MoneyFields on Money {
              amount
              currency
            }

            fragment RenewalFields on Renewal {
              id
              cycle
              kind
              status
              periodStart
              periodEnd
              amount {
                ...MoneyFields
              }
              refundedAmount {
                ...MoneyFields
              }
              attempts
              createdAt
            }

            fragment SubscriptionFields on Subscription {
              id
              status
              renewalType
              version
              currency
              startDate
              nextRenewalDate
              trialEndDate
              endDate
              cancelAtPeriodEnd
              metadata
              createdAt
              updatedAt
              amount {
                ...MoneyFields
              }
              customer {
                id
                email
                name
              }
              profile {
                id
                name
              }
              items {
                id
                quantity
                unitPrice {
                  ...MoneyFields
                }
                total {
                  ...MoneyFields
                }
                product {
                  id
                  sku
                  name
                }
              }
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query, operation_name="ForceBill", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return ForceBill.model_validate(data)

    async def retry_renewal(
        self, input: RetryRenewalInput, **kwargs: Any
    ) -> RetryRenewal:
        query = gql("""
            mutation RetryRenewal($input: RetryRenewalInput!) {
              retryRenewal(input: $input) {
                userErrors {
                  ...ErrorFields
                }
                subscription {
                  ...SubscriptionFields
                }
                renewal {
                  ...RenewalFields
                }
              }
            }

            fragment ErrorFields on UserError {
              field
              code
              message
            }

            fragment MoneyFields on Money {
              amount
              currency
            }

            fragment RenewalFields on Renewal {
              id
              cycle
              kind
              status
              periodStart
              periodEnd
              amount {
                ...MoneyFields
              }
              refundedAmount {
                ...MoneyFields
              }
              attempts
              createdAt
            }

            fragment SubscriptionFields on Subscription {
              id
              status
              renewalType
              version
              currency
              startDate
              nextRenewalDate
              trialEndDate
              endDate
              cancelAtPeriodEnd
              metadata
              createdAt
              updatedAt
              amount {
                ...MoneyFields
              }
              customer {
                id
                email
                name
              }
              profile {
                id
                name
              }
              items {
                id
                quantity
                unitPrice {
                  ...MoneyFields
                }
                total {
                  ...MoneyFields
                }
                product {
                  id
                  sku
                  name
                }
              }
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query, operation_name="RetryRenewal", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return RetryRenewal.model_validate(data)

    async def refund_renewal(
        self, input: RefundRenewalInput, **kwargs: Any
    ) -> RefundRenewal:
        query = gql("""
            mutation RefundRenewal($input: RefundRenewalInput!) {
              refundRenewal(input: $input) {
                userErrors {
                  ...ErrorFields
                }
                subscription {
                  ...SubscriptionFields
                }
                renewal {
                  ...RenewalFields
                }
              }
            }

            fragment ErrorFields on UserError {
              field
              code
              message
            }

            fragment MoneyFields on Money {
              amount
              currency
            }

            fragment RenewalFields on Renewal {
              id
              cycle
              kind
              status
              periodStart
              periodEnd
              amount {
                ...MoneyFields
              }
              refundedAmount {
                ...MoneyFields
              }
              attempts
              createdAt
            }

            fragment SubscriptionFields on Subscription {
              id
              status
              renewalType
              version
              currency
              startDate
              nextRenewalDate
              trialEndDate
              endDate
              cancelAtPeriodEnd
              metadata
              createdAt
              updatedAt
              amount {
                ...MoneyFields
              }
              customer {
                id
                email
                name
              }
              profile {
                id
                name
              }
              items {
                id
                quantity
                unitPrice {
                  ...MoneyFields
                }
                total {
                  ...MoneyFields
                }
                product {
                  id
                  sku
                  name
                }
              }
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query, operation_name="RefundRenewal", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return RefundRenewal.model_validate(data)

    async def webhook_endpoints(
        self,
        first: Union[Optional[int], UnsetType] = UNSET,
        after: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> WebhookEndpoints:
        query = gql("""
            query WebhookEndpoints($first: Int, $after: String) {
              webhookEndpoints(first: $first, after: $after) {
                totalCount
                pageInfo {
                  ...PageFields
                }
                edges {
                  node {
                    ...WebhookEndpointFields
                  }
                }
              }
            }

            fragment PageFields on PageInfo {
              hasNextPage
              hasPreviousPage
              startCursor
              endCursor
            }

            fragment WebhookEndpointFields on WebhookEndpoint {
              id
              url
              description
              events
              enabled
              disabledReason
              createdAt
            }
            """)
        variables: dict[str, object] = {"first": first, "after": after}
        response = await self.execute(
            query=query,
            operation_name="WebhookEndpoints",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return WebhookEndpoints.model_validate(data)

    async def create_webhook_endpoint(
        self, input: CreateWebhookEndpointInput, **kwargs: Any
    ) -> CreateWebhookEndpoint:
        query = gql("""
            mutation CreateWebhookEndpoint($input: CreateWebhookEndpointInput!) {
              createWebhookEndpoint(input: $input) {
                userErrors {
                  ...ErrorFields
                }
                endpoint {
                  ...WebhookEndpointFields
                }
                secret
              }
            }

            fragment ErrorFields on UserError {
              field
              code
              message
            }

            fragment WebhookEndpointFields on WebhookEndpoint {
              id
              url
              description
              events
              enabled
              disabledReason
              createdAt
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query,
            operation_name="CreateWebhookEndpoint",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return CreateWebhookEndpoint.model_validate(data)

    async def update_webhook_endpoint(
        self, input: UpdateWebhookEndpointInput, **kwargs: Any
    ) -> UpdateWebhookEndpoint:
        query = gql("""
            mutation UpdateWebhookEndpoint($input: UpdateWebhookEndpointInput!) {
              updateWebhookEndpoint(input: $input) {
                userErrors {
                  ...ErrorFields
                }
                endpoint {
                  ...WebhookEndpointFields
                }
              }
            }

            fragment ErrorFields on UserError {
              field
              code
              message
            }

            fragment WebhookEndpointFields on WebhookEndpoint {
              id
              url
              description
              events
              enabled
              disabledReason
              createdAt
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query,
            operation_name="UpdateWebhookEndpoint",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return UpdateWebhookEndpoint.model_validate(data)

    async def rotate_webhook_secret(
        self, input: RotateWebhookSecretInput, **kwargs: Any
    ) -> RotateWebhookSecret:
        query = gql("""
            mutation RotateWebhookSecret($input: RotateWebhookSecretInput!) {
              rotateWebhookSecret(input: $input) {
                userErrors {
                  ...ErrorFields
                }
                endpoint {
                  ...WebhookEndpointFields
                }
                secret
              }
            }

            fragment ErrorFields on UserError {
              field
              code
              message
            }

            fragment WebhookEndpointFields on WebhookEndpoint {
              id
              url
              description
              events
              enabled
              disabledReason
              createdAt
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query,
            operation_name="RotateWebhookSecret",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return RotateWebhookSecret.model_validate(data)

    async def delete_webhook_endpoint(
        self, input: DeleteWebhookEndpointInput, **kwargs: Any
    ) -> DeleteWebhookEndpoint:
        query = gql("""
            mutation DeleteWebhookEndpoint($input: DeleteWebhookEndpointInput!) {
              deleteWebhookEndpoint(input: $input) {
                userErrors {
                  ...ErrorFields
                }
                deletedEndpointId
              }
            }

            fragment ErrorFields on UserError {
              field
              code
              message
            }
            """)
        variables: dict[str, object] = {"input": input}
        response = await self.execute(
            query=query,
            operation_name="DeleteWebhookEndpoint",
            variables=variables,
            **kwargs,
        )
        data = self.get_data(response)
        return DeleteWebhookEndpoint.model_validate(data)
